//! Tests of the `jobs` table: the life of a job, cancel requests, stale heartbeats.

use super::*;
use crate::NewRun;

fn queued(store: &mut Store, run_id: Option<i64>) -> JobRecord {
    store
        .create_job(&NewJob {
            kind: "train".into(),
            params: r#"{"steps":100}"#.into(),
            run_id,
        })
        .unwrap()
}

#[test]
fn a_job_is_queued_started_advanced_and_finished() {
    let (_dir, mut store) = crate::migrations::test_store();
    let job = queued(&mut store, None);
    assert_eq!(job.status, Status::Queued);
    let running = store.start_job(job.id).unwrap();
    assert_eq!(running.status, Status::Running);
    assert!(running.heartbeat_at.is_some());
    store
        .set_job_progress(job.id, 40, Some(100), "step 40")
        .unwrap();
    store
        .finish_job(job.id, Status::Failed, Some(("train.oom", "out of memory")))
        .unwrap();
    let done = store.job(job.id).unwrap();
    assert_eq!((done.progress_done, done.progress_total), (40, Some(100)));
    assert_eq!(done.message, "step 40");
    assert_eq!(done.error_code.as_deref(), Some("train.oom"));
    assert!(done.finished_at.is_some());
    let err = store.start_job(job.id).unwrap_err();
    assert_eq!(err.code(), "store.invalid");
    assert!(err.to_string().contains("failed"), "{err}");
}

#[test]
fn finishing_needs_a_final_status() {
    let (_dir, mut store) = crate::migrations::test_store();
    let job = queued(&mut store, None);
    let err = store.finish_job(job.id, Status::Running, None).unwrap_err();
    assert_eq!(err.code(), "store.invalid");
    let err = store.finish_job(99, Status::Succeeded, None).unwrap_err();
    assert_eq!(err.code(), "store.not_found");
}

#[test]
fn cancel_asks_a_running_job_and_ends_a_queued_one() {
    let (_dir, mut store) = crate::migrations::test_store();
    let waiting = queued(&mut store, None);
    let running = queued(&mut store, None);
    store.start_job(running.id).unwrap();
    assert_eq!(
        store.request_job_cancel(waiting.id).unwrap(),
        CancelOutcome::Cancelled
    );
    assert_eq!(store.job(waiting.id).unwrap().status, Status::Cancelled);
    assert_eq!(
        store.heartbeat_jobs(&[running.id]).unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        store.request_job_cancel(running.id).unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        store.heartbeat_jobs(&[running.id]).unwrap(),
        vec![running.id]
    );
    store
        .finish_job(running.id, Status::Cancelled, None)
        .unwrap();
    assert_eq!(
        store.request_job_cancel(running.id).unwrap(),
        CancelOutcome::AlreadyFinished(Status::Cancelled)
    );
    assert_eq!(
        store.request_job_cancel(77).unwrap_err().code(),
        "store.not_found"
    );
}

#[test]
fn only_stale_running_jobs_are_interrupted_with_their_runs() {
    let (_dir, mut store) = crate::migrations::test_store();
    let run = store.create_run(&NewRun::default()).unwrap().id;
    store.set_run_status(run, Status::Running, None).unwrap();
    let dead = queued(&mut store, Some(run));
    let alive = queued(&mut store, None);
    let waiting = queued(&mut store, None);
    store.start_job(dead.id).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let cutoff = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.start_job(alive.id).unwrap();
    let interrupted = store.interrupt_stale_jobs(cutoff).unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].id, dead.id);
    assert_eq!(interrupted[0].status, Status::Interrupted);
    assert_eq!(store.run(run).unwrap().status, Status::Interrupted);
    assert_eq!(store.job(alive.id).unwrap().status, Status::Running);
    assert_eq!(store.job(waiting.id).unwrap().status, Status::Queued);
    // Resuming keeps the progress and runs again.
    assert_eq!(store.start_job(dead.id).unwrap().status, Status::Running);
}

#[test]
fn a_finished_job_finishes_its_run() {
    let (_dir, mut store) = crate::migrations::test_store();
    let run = store.create_run(&NewRun::default()).unwrap().id;
    store.set_run_status(run, Status::Running, None).unwrap();
    let job = queued(&mut store, Some(run));
    store.start_job(job.id).unwrap();
    store.finish_job(job.id, Status::Succeeded, None).unwrap();
    let run = store.run(run).unwrap();
    assert_eq!(run.status, Status::Succeeded);
    assert!(run.finished_at.is_some());
}
