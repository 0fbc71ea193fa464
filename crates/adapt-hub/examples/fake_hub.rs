//! A Hub look-alike on 127.0.0.1 serving the tiny test repository `tiny/llama`, for trying
//! `adapt models pull` by hand (a pull, a kill, a resume) without the network.
//!
//! ```sh
//! cargo run -p adapt-hub --features test-util --example fake_hub -- --port 8765 \
//!     --shard-kb 4096 --kb-per-second 512
//! HF_ENDPOINT=http://127.0.0.1:8765 adapt models pull tiny/llama
//! ```
//!
//! Every request is printed with the range asked for and the body bytes sent.

use std::time::Duration;

use adapt_hub::test_util::{tiny_model_repo, FakeHub};

fn main() {
    let mut port = 8765u16;
    let mut shard_kb = 4096u64;
    let mut rate_kb: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        match (arg.as_str(), value) {
            ("--port", Some(v)) => port = u16::try_from(v).unwrap_or(port),
            ("--shard-kb", Some(v)) => shard_kb = v,
            ("--kb-per-second", Some(v)) => rate_kb = Some(v),
            _ => {
                eprintln!("usage: fake_hub [--port N] [--shard-kb N] [--kb-per-second N]");
                std::process::exit(2);
            }
        }
    }
    let hub = FakeHub::start_at(port, vec![tiny_model_repo("tiny/llama", shard_kb * 1024)]);
    hub.throttle(rate_kb.map(|k| k * 1024));
    println!("serving tiny/llama at {}", hub.endpoint());
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
