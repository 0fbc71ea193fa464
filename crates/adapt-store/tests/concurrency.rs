//! A reader (the UI polling a run's chart) and writers (a job writing metrics and progress,
//! another heartbeating) on separate connections at the same time: no "database is locked"
//! error may surface, and the reader only ever sees whole transactions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use adapt_store::{Metric, NewJob, NewRun, Store};

const WRITES: u64 = 400;

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

    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            for step in 1..=WRITES {
                // Two rows per transaction: the reader must never see an odd count.
                let metrics = [2 * step - 1, 2 * step].map(|s| Metric {
                    step: s,
                    train_loss: Some(1.0),
                    ..Metric::default()
                });
                store.add_metrics(run, &metrics).unwrap();
                store.set_job_progress(job, step, Some(WRITES), "").unwrap();
            }
        })
    };
    let heartbeat = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let mut store = Store::open(&db).unwrap();
            let mut beats = 0;
            while !done.load(Ordering::Relaxed) {
                assert!(store.heartbeat_jobs(&[job]).unwrap().is_empty());
                beats += 1;
            }
            beats
        })
    };
    let reader = {
        let (db, done) = (db.clone(), done.clone());
        std::thread::spawn(move || {
            let store = Store::open(&db).unwrap();
            let (mut reads, mut last) = (0u64, 0usize);
            while !done.load(Ordering::Relaxed) {
                let n = store.metrics(run, None).unwrap().len();
                assert_eq!(n % 2, 0, "a half-written transaction was visible");
                assert!(n >= last, "rows went missing");
                last = n;
                store.job(job).unwrap();
                store.runs().unwrap();
                reads += 1;
            }
            reads
        })
    };
    writer.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let beats = heartbeat.join().unwrap();
    let reads = reader.join().unwrap();
    assert!(
        reads > 10 && beats > 10,
        "reads {reads}, heartbeats {beats}"
    );
    let store = Store::open(&db).unwrap();
    assert_eq!(store.metrics(run, None).unwrap().len() as u64, 2 * WRITES);
    assert_eq!(store.job(job).unwrap().progress_done, WRITES);
}
