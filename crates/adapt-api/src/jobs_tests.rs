//! The job runner through [`Adapt`]: progress, failure, panics, cancel in this process and
//! from another, and jobs of dead processes marked interrupted while live ones are left alone.

use std::path::Path;
use std::time::{Duration, Instant};

use adapt_store::Store;

use super::*;
use crate::{Adapt, AdaptConfig};

fn fast() -> JobTiming {
    JobTiming {
        heartbeat: Duration::from_millis(30),
        // Generous next to the heartbeat, so a loaded machine never makes a live job look dead.
        stale_after: Duration::from_millis(1500),
    }
}

fn adapt(dir: &Path) -> Adapt {
    Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.to_path_buf()),
        job_timing: fast(),
        ..AdaptConfig::default()
    })
    .unwrap()
}

/// Work that runs until cancelled (failing after 20 s so a broken cancel cannot hang).
fn until_cancelled(ctx: &JobContext) -> Result<(), ApiError> {
    let started = Instant::now();
    let mut step = 0;
    while !ctx.is_cancelled() {
        step += 1;
        ctx.progress(step, None, "working")?;
        if started.elapsed() > Duration::from_secs(20) {
            return Err(ApiError::new(ErrorCode::ApiInternal, "never cancelled"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

#[test]
fn a_job_streams_progress_and_its_end_is_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = adapt(dir.path());
    let handle = adapt
        .spawn_job(
            JobKind::PrepareDataset,
            r#"{"file":"a.jsonl"}"#,
            None,
            |ctx| {
                for done in 1..=5 {
                    ctx.progress(done, Some(5), &format!("{done} of 5"))?;
                }
                Ok(())
            },
        )
        .unwrap();
    let id = handle.id();
    let events: Vec<JobEvent> = handle.events().iter().collect();
    assert_eq!(events.first(), Some(&JobEvent::Started { job: id }));
    assert_eq!(events.len(), 7, "{events:?}");
    assert_eq!(
        events.last(),
        Some(&JobEvent::Finished {
            job: id,
            status: JobStatus::Succeeded,
            error: None
        })
    );
    let record = handle.wait().unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!((record.progress_done, record.progress_total), (5, Some(5)));
    assert_eq!(record.kind, "prepare_dataset");
    assert_eq!(record.params, r#"{"file":"a.jsonl"}"#);
    // Another process sees the same.
    let other = Store::open(&dir.path().join("adapt.db")).unwrap();
    assert_eq!(other.job(id).unwrap(), record);
}

#[test]
fn failures_and_panics_fail_the_job_with_a_code() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = adapt(dir.path());
    let failed = adapt
        .spawn_job(JobKind::Download, "", None, |_| {
            Err(ApiError::new(ErrorCode::HubOffline, "no network"))
        })
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("hub.offline"));
    assert_eq!(failed.error_message.as_deref(), Some("no network"));
    let panicked = adapt
        .spawn_job(JobKind::Convert, "", None, |_| panic!("bad shape"))
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(panicked.status, JobStatus::Failed);
    assert_eq!(panicked.error_code.as_deref(), Some("job.panicked"));
    assert!(panicked.error_message.unwrap().contains("bad shape"));
}

#[test]
fn a_job_is_cancelled_from_its_handle_or_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = adapt(dir.path());
    let handle = adapt
        .spawn_job(JobKind::Train, "", None, until_cancelled)
        .unwrap();
    handle.events().recv().unwrap();
    handle.cancel();
    assert_eq!(handle.wait().unwrap().status, JobStatus::Cancelled);

    let handle = adapt
        .spawn_job(JobKind::Train, "", None, until_cancelled)
        .unwrap();
    handle.events().recv().unwrap();
    assert_eq!(
        adapt.cancel_job(handle.id()).unwrap(),
        CancelOutcome::Requested
    );
    let record = handle.wait().unwrap();
    assert_eq!(record.status, JobStatus::Cancelled);
    assert!(record.progress_done >= 1);
    let err = adapt.cancel_job(9999).unwrap_err();
    assert_eq!(err.code, "job.not_found");
}

#[test]
fn dead_jobs_are_interrupted_on_start_up_and_live_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    // A job whose process died: running, and no heartbeat since.
    let dead = {
        let mut store = Store::open(&dir.path().join("adapt.db")).unwrap();
        let run = store
            .create_run(&adapt_store::NewRun::default())
            .unwrap()
            .id;
        store.set_run_status(run, JobStatus::Running, None).unwrap();
        let job = store
            .create_job(&adapt_store::NewJob {
                kind: "train".into(),
                run_id: Some(run),
                ..Default::default()
            })
            .unwrap();
        store.start_job(job.id).unwrap().id
    };
    // A job of a live process (another `Adapt` with its own runner and connection).
    let owner = adapt(dir.path());
    let live = owner
        .spawn_job(JobKind::Train, "", None, until_cancelled)
        .unwrap();
    live.events().recv().unwrap();
    std::thread::sleep(fast().stale_after * 2);

    let later = adapt(dir.path());
    let resumable = later.resumable_jobs().unwrap();
    assert_eq!(resumable.iter().map(|j| j.id).collect::<Vec<_>>(), [dead]);
    let run = later.run(resumable[0].run_id.unwrap()).unwrap();
    assert_eq!(run.run.status, JobStatus::Interrupted);
    assert_eq!(run.jobs.len(), 1);
    assert_eq!(later.job(live.id()).unwrap().status, JobStatus::Running);

    // Cancelled from the other `Adapt`: it reaches the owner through the store.
    assert_eq!(
        later.cancel_job(live.id()).unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(live.wait().unwrap().status, JobStatus::Cancelled);
    assert_eq!(later.cancel_job(dead).unwrap(), CancelOutcome::Cancelled);
    assert!(later.resumable_jobs().unwrap().is_empty());
}

#[test]
fn an_unusable_data_directory_fails_only_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let adapt = Adapt::start_with(AdaptConfig {
        data_dir: Some(file),
        ..AdaptConfig::default()
    })
    .unwrap();
    let err = adapt.runs().unwrap_err();
    assert_eq!(err.code, "store.create_dir", "{err:?}");
    assert!(err.message.contains("not-a-dir"), "{}", err.message);
    assert_eq!(adapt.jobs().unwrap_err().code, "store.create_dir");
}

#[test]
fn the_models_cache_setting_is_saved_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let adapt = adapt(dir.path());
    if std::env::var_os("ADAPT_MODELS_DIR").is_none() {
        adapt.set_models_dir(Some(Path::new("/saved"))).unwrap();
        assert_eq!(adapt.models_dir(None), Path::new("/saved"));
        adapt.set_models_dir(None).unwrap();
        assert_ne!(adapt.models_dir(None), Path::new("/saved"));
    }
    assert_eq!(
        adapt.models_dir(Some(Path::new("/flag"))),
        Path::new("/flag")
    );
}
