//! The Hub's answers, hostile: a repository spec (`owner/name@revision`), the repository info
//! JSON and a safetensors index (`model.safetensors.index.json`), cut at 0 bytes, through what
//! a pull does with them — the files chosen, the shards the index names, their sizes and blob
//! names. Any input must give a value or an error, never a panic.
#![no_main]

use adapt_hub::{select_files, shards_from_index, RepoInfo, RepoSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (spec, rest) = adapt_fuzz::split(data);
    let (info, index) = adapt_fuzz::split(rest);
    if let Ok(spec) = RepoSpec::parse(&String::from_utf8_lossy(spec)) {
        let _ = spec.cache_folder();
        let _ = spec.to_string();
    }
    let Ok(info) = serde_json::from_slice::<RepoInfo>(info) else {
        return;
    };
    let chosen = select_files(&info, None).unwrap_or_default();
    if let Some(first) = info.siblings.first() {
        let _ = select_files(&info, Some(&first.rfilename));
    }
    for sibling in chosen
        .iter()
        .chain(&shards_from_index(&info, index).unwrap_or_default())
    {
        let _ = sibling.expected_size();
        let _ = sibling.blob_name(&info.sha);
    }
});
