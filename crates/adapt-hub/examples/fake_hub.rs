//! A Hub look-alike on 127.0.0.1, for trying `adapt models pull` by hand (a pull, a kill, a
//! resume) and for the app's real-window test, without the network. By default it serves
//! the tiny test repository `tiny/llama`; `--repo ORG/NAME --file PATH…` serves real files
//! instead (weights as LFS files, as the Hub serves them).
//!
//! ```sh
//! cargo run -p adapt-hub --features test-util --example fake_hub -- --port 8765 \
//!     --shard-kb 4096 --kb-per-second 512
//! HF_ENDPOINT=http://127.0.0.1:8765 adapt models pull tiny/llama
//! ```
//!
//! The first line printed names the endpoint (`--port 0`: any free port). Every request is
//! then printed with the range asked for and the body bytes sent.

use std::path::PathBuf;
use std::time::Duration;

use adapt_hub::test_util::{git_blob_id, tiny_model_repo, Access, FakeFile, FakeHub, FakeRepo};

const USAGE: &str = "usage: fake_hub [--port N] [--shard-kb N] [--kb-per-second N] \
                     [--repo ORG/NAME --file PATH [--file PATH…]]";

fn usage(problem: &str) -> ! {
    eprintln!("fake_hub: {problem}\n{USAGE}");
    std::process::exit(2);
}

/// A repository of the files at `paths`, each under its own file name.
fn repo_of_files(id: &str, paths: &[PathBuf]) -> FakeRepo {
    let files = paths
        .iter()
        .map(|path| {
            let bytes =
                std::fs::read(path).unwrap_or_else(|e| usage(&format!("{}: {e}", path.display())));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| usage(&format!("{}: not a file", path.display())));
            let lfs = name.ends_with(".gguf") || name.ends_with(".safetensors");
            FakeFile { name, bytes, lfs }
        })
        .collect();
    FakeRepo {
        id: id.into(),
        commit: git_blob_id(id.as_bytes()),
        files,
        access: Access::Public,
    }
}

fn main() {
    let mut port = 8765u16;
    let mut shard_kb = 4096u64;
    let mut rate_kb: Option<u64> = None;
    let mut repo: Option<String> = None;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args
            .next()
            .unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        let number = || {
            value
                .parse::<u64>()
                .unwrap_or_else(|_| usage(&format!("{arg}: '{value}' is not a number")))
        };
        match arg.as_str() {
            "--port" => {
                port = u16::try_from(number()).unwrap_or_else(|_| usage("--port: too large"))
            }
            "--shard-kb" => shard_kb = number(),
            "--kb-per-second" => rate_kb = Some(number()),
            "--repo" => repo = Some(value),
            "--file" => files.push(PathBuf::from(value)),
            _ => usage(&format!("unknown option {arg}")),
        }
    }
    let served = match (repo, files.is_empty()) {
        (Some(id), false) => repo_of_files(&id, &files),
        (None, true) => tiny_model_repo("tiny/llama", shard_kb * 1024),
        _ => usage("--repo and --file go together"),
    };
    let id = served.id.clone();
    let hub = FakeHub::start_at(port, vec![served]);
    hub.throttle(rate_kb.map(|k| k * 1024));
    println!("serving {id} at {}", hub.endpoint());
    let mut seen = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let log = hub.log_now();
        for s in &log[seen..] {
            let range = s
                .range_start
                .map_or("-".to_string(), |r| format!("bytes={r}-"));
            println!(
                "{} {}  range {range}  sent {} bytes",
                s.status, s.path, s.bytes
            );
        }
        seen = log.len();
    }
}
