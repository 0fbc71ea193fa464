//! A reader (the UI polling a run's chart) and writers (a job writing metrics and progress,
//! another heartbeating) on separate connections at the same time: no "database is locked"
//! error may surface, and the reader only ever sees whole transactions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use adapt_store::{Metric, NewJob, NewRun, Store};

/// At least this many write transactions; the writer goes on (up to 100×) until the reader and
/// the heartbeat have each done more than 10 operations beside it.
const WRITES: u64 = 200;

/// What the writer rests between steps (a job writes a step's metrics, then trains the next
/// one; it saves progress every 200 ms) and what the heartbeat rests between beats (every 2 s
/// in a job). SQLite's busy wait is not fair: a writer that retakes the lock the moment it lets
/// it go can starve another past any timeout, which no writer of Adapt's does. The heartbeat's
/// rest is the busy wait's longest sleep, so a waiting writer always gets in.
const STEP_REST: Duration = Duration::from_millis(10);
const BEAT_REST: Duration = Duration::from_millis(100);

#[test]
fn a_reader_and_two_writers_never_see_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("adapt.db");
    let (run, job) = {
        let mut store = Store::open(&db).unwrap();
        let run = store.create_run(&NewRun::default()).unwrap().id;
        let job = store
            .create_job(&NewJob {
                kind: "train".into(),
                run_id: Some(run),
                ..NewJob::default()
            })
            .unwrap()
            .id;
        store.start_job(job).unwrap();
        (run, job)
    };
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let beats = Arc::new(AtomicU64::new(0));

    let writer = {
        let (db, reads, beats) = (db.clone(), reads.clone(), beats.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            let mut step = 0;
            while step < WRITES
                || (step < 100 * WRITES
                    && (reads.load(Ordering::Relaxed) <= 10 || beats.load(Ordering::Relaxed) <= 10))
            {
                step += 1;
                // Two rows per transaction: the reader must never see an odd count.
                let metrics = [2 * step - 1, 2 * step].map(|s| Metric {
                    step: s,
                    train_loss: Some(1.0),
                    ..Metric::default()
                });
                store.add_metrics(run, &metrics).unwrap();
                store.set_job_progress(job, step, None, "").unwrap();
                std::thread::sleep(STEP_REST);
            }
            step
        })
    };
    let heartbeat = {
        let (db, done, beats) = (db.clone(), done.clone(), beats.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            while !done.load(Ordering::Relaxed) {
                assert!(store.heartbeat_jobs(&[job]).unwrap().is_empty());
                beats.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(BEAT_REST);
            }
        })
    };
    let reader = {
        let (db, done, reads) = (db.clone(), done.clone(), reads.clone());
        std::thread::spawn(move || {
            let store = Store::open(&db).unwrap();
            let mut last = 0usize;
            while !done.load(Ordering::Relaxed) {
                let n = store.metrics(run, None).unwrap().len();
                assert_eq!(n % 2, 0, "a half-written transaction was visible");
                assert!(n >= last, "rows went missing");
                last = n;
                store.job(job).unwrap();
                store.runs().unwrap();
                reads.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let written = writer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    heartbeat.join().unwrap();
    reader.join().unwrap();
    let (reads, beats) = (reads.load(Ordering::Relaxed), beats.load(Ordering::Relaxed));
    assert!(
        reads > 10 && beats > 10,
        "reads {reads}, heartbeats {beats} beside {written} writes"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.metrics(run, None).unwrap().len() as u64, 2 * written);
    assert_eq!(store.job(job).unwrap().progress_done, written);
}

/// Processes that start together on a new data directory (a launch's ranks, the app and the
/// CLI) open its new database at once: each must get it, none `store.busy` (SQLite refuses
/// one of two connections that both switch a new file to WAL at once, without waiting).
#[test]
fn connections_opening_a_new_database_at_once_all_get_it() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("adapt.db");
        let start = Arc::new(std::sync::Barrier::new(4));
        let opened: Vec<_> = (0..4)
            .map(|_| {
                let (db, start) = (db.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Store::open(&db).map(|_| ())
                })
            })
            .collect();
        for o in opened {
            if let Err(e) = o.join().unwrap() {
                panic!("round {round}: {e} ({})", e.code());
            }
        }
    }
}
