//! Crash safety: a child process writes training metrics in a loop and is killed with
//! SIGKILL at random moments, again and again. After every kill the database must open, pass
//! `PRAGMA integrity_check`, and hold every step the child reported as committed — and no
//! torn transaction: the steps present are exactly 1..=N (each transaction writes 1–3 steps,
//! so a partial one would leave a gap or a short tail that the next child would not fill).
//!
//! The child is this same test binary run again with `ADAPT_STORE_CRASH_CHILD` set, hence
//! `harness = false` and a `main` of its own.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use adapt_store::{Metric, NewJob, NewRun, Store};

const CHILD_ENV: &str = "ADAPT_STORE_CRASH_CHILD";
const KILLS: usize = 25;
const NAME: &str = "sigkill_mid_write_keeps_every_committed_row";

fn main() {
    if let Some(db) = std::env::var_os(CHILD_ENV) {
        child(Path::new(&db));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    // Honour a name filter as libtest would (flags such as --nocapture are ignored).
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())) {
        println!("running 0 tests (filtered out)");
        return;
    }
    println!("running 1 test");
    parent();
    println!("test {NAME} ... ok");
}

/// Writes metrics for run 1 forever, printing each committed step; the parent kills it.
fn child(db: &Path) -> ! {
    let mut store = Store::open(db).expect("child opens the database");
    let job = store.jobs().expect("jobs")[0].id;
    let mut step = store.last_metric_step(1).expect("last step").unwrap_or(0);
    let mut out = std::io::stdout().lock();
    loop {
        let batch: Vec<Metric> = (1..=1 + step % 3)
            .map(|i| Metric {
                step: step + i,
                epoch: (step + i) as f64 / 100.0,
                train_loss: Some(1.0 / (step + i) as f64),
                val_loss: matches!((step + i) % 10, 0).then_some(0.5),
                learning_rate: 1e-4,
                tokens_per_second: 250.0,
                peak_memory: 1 << 28,
                ..Metric::default()
            })
            .collect();
        store.add_metrics(1, &batch).expect("metrics committed");
        step += batch.len() as u64;
        writeln!(out, "{step}").expect("parent reads");
        out.flush().expect("parent reads");
        store
            .set_job_progress(job, step, None, &format!("step {step}"))
            .expect("progress committed");
    }
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("adapt.db");
    {
        let mut store = Store::open(&db).unwrap();
        let run = store.create_run(&NewRun::default()).unwrap();
        assert_eq!(run.id, 1);
        store
            .create_job(&NewJob {
                kind: "train".into(),
                run_id: Some(1),
                ..NewJob::default()
            })
            .unwrap();
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = seed;
    let started = Instant::now();
    let mut reported = 0u64;
    for kill in 1..=KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, &db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child starts");
        let (tx, steps) = mpsc::channel::<u64>();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let step = line.trim().parse().expect("child prints steps");
                if tx.send(step).is_err() {
                    break;
                }
            }
        });
        // Kill only once the child is writing, after a random 5–100 ms more of writes.
        let first = steps
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("child {kill} committed nothing within 20 s"));
        reported = reported.max(first);
        std::thread::sleep(Duration::from_micros(5_000 + xorshift(&mut rng) % 95_000));
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        reader.join().unwrap();
        reported = steps.try_iter().fold(reported, u64::max);

        let store = Store::open(&db).unwrap_or_else(|e| panic!("open after kill {kill}: {e}"));
        assert_eq!(store.integrity_check().unwrap(), "ok", "after kill {kill}");
        let present: Vec<u64> = store
            .metrics(1, None)
            .unwrap()
            .iter()
            .map(|m| m.step)
            .collect();
        let n = present.len() as u64;
        assert!(
            n >= reported,
            "kill {kill}: {reported} steps reported committed, {n} in the database"
        );
        assert!(
            present.iter().copied().eq(1..=n),
            "kill {kill}: steps are not exactly 1..={n}"
        );
    }
    let store = Store::open(&db).unwrap();
    let rows = store.metrics(1, None).unwrap().len();
    eprintln!(
        "crash test: {KILLS} SIGKILLs mid-write, {rows} metric rows present and verified \
         (every one of the {reported} steps reported committed is there, no gaps), \
         integrity_check ok after each kill, {:.1} s, seed {seed}",
        started.elapsed().as_secs_f64()
    );
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
