//! A JSONL dataset, hostile: every line read, validated (chat, completions, text; tools) and,
//! with the real model's tokenizer and chat template when it is on this machine, rendered,
//! masked and measured as the app's preview does; and the same file read as a conversation set
//! of the topic-isolation experiment. Any input must give a report or an error naming the
//! line, never a panic.
#![no_main]

use adapt_data::{inspect, DataOptions, ImportOptions, Importer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = adapt_fuzz::write("data.jsonl", data);
    if let Ok(rows) = Importer::open(&path, &ImportOptions::default()) {
        for row in rows {
            let _ = row;
        }
    }
    let opts = DataOptions {
        skip_invalid: true,
        ..DataOptions::default()
    };
    let _ = inspect(&path, &opts, adapt_fuzz::text_model(), 3, &mut |_| {});
    let _ = adapt_data::isolation::read_set(&path);
});
