//! A CSV / TSV dataset, hostile, with a hostile column mapping: the part before the input's
//! first 0 byte holds the prompt template, the completion template and the completion column
//! (one per line, empty for the default), the rest is the file. Every record is read, mapped
//! and, with the real model when it is on this machine, rendered and measured. Any input must
//! give a report or an error naming the line, never a panic.
#![no_main]

use adapt_data::{inspect, CsvOptions, DataOptions, ImportOptions, Importer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (mapping, file) = adapt_fuzz::split(data);
    let mapping = String::from_utf8_lossy(mapping);
    let mut lines = mapping
        .split('\n')
        .map(|l| (!l.is_empty()).then(|| l.to_string()));
    let csv = CsvOptions {
        delimiter: None,
        prompt_template: lines.next().flatten(),
        completion_template: lines.next().flatten(),
        completion_column: lines.next().flatten(),
    };
    let tsv = file.first().is_some_and(|b| b & 1 == 1);
    let path = adapt_fuzz::write(if tsv { "data.tsv" } else { "data.csv" }, file);
    let import = ImportOptions {
        csv,
        ..ImportOptions::default()
    };
    if let Ok(rows) = Importer::open(&path, &import) {
        for row in rows {
            let _ = row;
        }
    }
    let opts = DataOptions {
        import,
        skip_invalid: true,
        ..DataOptions::default()
    };
    let _ = inspect(&path, &opts, adapt_fuzz::text_model(), 3, &mut |_| {});
});
