//! The job runner: long work (training, downloads, dataset preparation, conversion) on its own
//! thread, with typed progress, cancel, and status persisted in the store so nothing is lost
//! when the process dies.
//!
//! [`JobRunner::spawn`] records a queued job, starts a thread that marks it running and calls
//! the work with a [`JobContext`] (report progress, check for cancel, write to the store), and
//! records how it ended: succeeded, failed (with the error's code and message), or cancelled.
//! Progress streams to the caller as [`JobEvent`]s on the [`JobHandle`].
//!
//! A heartbeat thread stamps every running job of this process every `heartbeat` interval and
//! picks up cancel requests other processes wrote (`adapt jobs cancel` while the app trains).
//! A job whose heartbeat is older than `stale_after` belongs to a process that died: on
//! start-up (and whenever jobs are listed) such jobs are marked [`JobStatus::Interrupted`] and
//! offered for resume, and a job's run, if it has one, goes with it.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use adapt_store::{CancelOutcome, JobRecord, Status as JobStatus};
use adapt_store::{NewJob, Store};
use serde::Serialize;

use crate::error::{ApiError, ErrorCode};

/// The store shared by the API's threads (one connection; transactions are short).
pub(crate) type SharedStore = Arc<Mutex<Store>>;

/// Locks the store; a thread that panicked while holding it left no half-done transaction
/// (rusqlite rolls back on drop), so the store is still usable.
pub(crate) fn lock(store: &SharedStore) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What kind of long work a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Train,
    Download,
    PrepareDataset,
    Convert,
    Sweep,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Train => "train",
            JobKind::Download => "download",
            JobKind::PrepareDataset => "prepare_dataset",
            JobKind::Convert => "convert",
            JobKind::Sweep => "sweep",
        }
    }
}

/// What a job streams to whoever started it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JobEvent {
    Started {
        job: i64,
    },
    Progress {
        job: i64,
        done: u64,
        total: Option<u64>,
        message: String,
    },
    Finished {
        job: i64,
        status: JobStatus,
        error: Option<ApiError>,
    },
}

/// Heartbeat timing.
#[derive(Debug, Clone, Copy)]
pub struct JobTiming {
    /// How often running jobs are stamped alive and cancel requests are read.
    pub heartbeat: Duration,
    /// A running job not stamped for this long belongs to a dead process.
    pub stale_after: Duration,
}

impl Default for JobTiming {
    fn default() -> Self {
        JobTiming {
            heartbeat: Duration::from_secs(2),
            stale_after: Duration::from_secs(10),
        }
    }
}

/// A cancel flag shared by a job and whoever may stop it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What the work of a job gets: its id, progress reporting, its cancel flag and the store.
pub struct JobContext {
    id: i64,
    store: SharedStore,
    cancel: CancelToken,
    events: Sender<JobEvent>,
    last_saved: Mutex<Option<Instant>>,
}

/// Progress is written to the store at most this often (the last update always is).
const SAVE_EVERY: Duration = Duration::from_millis(200);

impl JobContext {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// Reports progress: streamed to the caller, and saved so other processes see it.
    pub fn progress(&self, done: u64, total: Option<u64>, message: &str) -> Result<(), ApiError> {
        let _ = self.events.send(JobEvent::Progress {
            job: self.id,
            done,
            total,
            message: message.to_string(),
        });
        let mut last = self
            .last_saved
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let finished = total.is_some_and(|t| done >= t);
        if finished || last.is_none_or(|at| at.elapsed() >= SAVE_EVERY) {
            lock(&self.store).set_job_progress(self.id, done, total, message)?;
            *last = Some(Instant::now());
        }
        Ok(())
    }

    /// Whether someone asked this job to stop; work should check between steps, save what it
    /// has, and return.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The job's cancel flag, for work that runs elsewhere (the engine thread).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// The store, for what the work records (metrics, checkpoints, adapters).
    pub fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
}

/// A started job: its id, events, cancel, and its end.
pub struct JobHandle {
    id: i64,
    cancel: CancelToken,
    events: Receiver<JobEvent>,
    /// Ends with how the job ended as its thread saw it, recorded or not.
    thread: JoinHandle<(JobStatus, Option<ApiError>)>,
    store: SharedStore,
}

impl JobHandle {
    pub fn id(&self) -> i64 {
        self.id
    }

    /// The job's events; the channel closes after [`JobEvent::Finished`].
    pub fn events(&self) -> &Receiver<JobEvent> {
        &self.events
    }

    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The job's cancel flag (for a signal handler).
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Waits for the job to end and returns its record.
    pub fn wait(self) -> Result<JobRecord, ApiError> {
        // The job thread catches panics from the work, so joining fails only if recording
        // the end itself panicked; the record says what is known either way.
        let ended = self.thread.join().ok();
        let record = lock(&self.store).job(self.id);
        match (record, ended) {
            (Ok(mut record), Some((status, error))) => {
                // An end the store could not keep (a full disk, say) is still this one.
                record.status = status;
                if let Some(e) = error {
                    record.error_code = Some(e.code.as_str().to_string());
                    record.error_message = Some(e.message);
                }
                Ok(record)
            }
            (Ok(record), None) => Ok(record),
            (Err(_), Some((_, Some(error)))) => Err(error),
            (Err(e), _) => Err(e.into()),
        }
    }
}

/// Runs jobs on threads and keeps them alive in the store.
pub struct JobRunner {
    store: SharedStore,
    live: Arc<Mutex<HashMap<i64, CancelToken>>>,
    timing: JobTiming,
    stop: Option<Sender<()>>,
    heartbeat: Option<JoinHandle<()>>,
}

impl JobRunner {
    pub(crate) fn new(store: SharedStore, timing: JobTiming) -> Result<JobRunner, ApiError> {
        let live: Arc<Mutex<HashMap<i64, CancelToken>>> = Arc::default();
        let (stop, stopped) = mpsc::channel::<()>();
        let heartbeat = {
            let (store, live) = (store.clone(), live.clone());
            std::thread::Builder::new()
                .name("adapt-jobs-heartbeat".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(timing.heartbeat) {
                        Err(RecvTimeoutError::Timeout) => beat(&store, &live),
                        _ => return,
                    }
                })
                .map_err(|e| {
                    ApiError::new(ErrorCode::ApiThread, format!("cannot start jobs: {e}"))
                })?
        };
        Ok(JobRunner {
            store,
            live,
            timing,
            stop: Some(stop),
            heartbeat: Some(heartbeat),
        })
    }

    /// Queues a job of `kind` with `params` (JSON; enough to run it again) and runs `work`
    /// on a new thread. `work` returning `Err` fails the job with that error; returning
    /// after a cancel request (`Ok` or `Err`) cancels it. Once the end is recorded, `on_end`
    /// hears it (on the job's thread), then the [`JobEvent::Finished`] event is sent.
    pub fn spawn(
        &self,
        kind: JobKind,
        params: &str,
        run_id: Option<i64>,
        work: impl FnOnce(&JobContext) -> Result<(), ApiError> + Send + 'static,
        on_end: impl FnOnce(i64, JobStatus, Option<&ApiError>) + Send + 'static,
    ) -> Result<JobHandle, ApiError> {
        let id = lock(&self.store)
            .create_job(&NewJob {
                kind: kind.as_str().into(),
                params: params.into(),
                run_id,
            })?
            .id;
        let cancel = CancelToken::default();
        let (events_tx, events) = mpsc::channel();
        let ctx = JobContext {
            id,
            store: self.store.clone(),
            cancel: cancel.clone(),
            events: events_tx,
            last_saved: Mutex::new(None),
        };
        let live = self.live.clone();
        let thread = std::thread::Builder::new()
            .name(format!("adapt-job-{id}"))
            .spawn(move || run_job(ctx, live, work, on_end))
            .map_err(|e| {
                ApiError::new(ErrorCode::ApiThread, format!("cannot start job {id}: {e}"))
            })?;
        Ok(JobHandle {
            id,
            cancel,
            events,
            thread,
            store: self.store.clone(),
        })
    }

    /// Stops job `id`: a job of this process at once, one of another process at its next
    /// heartbeat, a queued or interrupted one by marking it cancelled.
    pub fn cancel(&self, id: i64) -> Result<CancelOutcome, ApiError> {
        let outcome = lock(&self.store).request_job_cancel(id)?;
        if let Some(token) = live_jobs(&self.live).get(&id) {
            token.cancel();
        }
        Ok(outcome)
    }

    /// Stops every job of this process (a shell quitting) and waits up to `wait` for them to
    /// end — a training run writes its checkpoint first. Returns how many were still running.
    pub fn stop_all(&self, wait: Duration) -> usize {
        for token in live_jobs(&self.live).values() {
            token.cancel();
        }
        let started = Instant::now();
        while !live_jobs(&self.live).is_empty() && started.elapsed() < wait {
            std::thread::sleep(Duration::from_millis(20));
        }
        live_jobs(&self.live).len()
    }

    /// Marks jobs whose process died as interrupted; returns them.
    pub fn interrupt_dead(&self) -> Result<Vec<JobRecord>, ApiError> {
        let stale_before = adapt_store::now_ms() - self.timing.stale_after.as_millis() as i64;
        Ok(lock(&self.store).interrupt_stale_jobs(stale_before)?)
    }
}

impl Drop for JobRunner {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.heartbeat.take() {
            let _ = thread.join();
        }
    }
}

fn live_jobs(live: &Mutex<HashMap<i64, CancelToken>>) -> MutexGuard<'_, HashMap<i64, CancelToken>> {
    live.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn beat(store: &SharedStore, live: &Mutex<HashMap<i64, CancelToken>>) {
    let ids: Vec<i64> = live_jobs(live).keys().copied().collect();
    if ids.is_empty() {
        return;
    }
    // A failed beat is retried at the next one; a job is only called dead after several.
    if let Ok(cancelled) = lock(store).heartbeat_jobs(&ids) {
        let live = live_jobs(live);
        for id in cancelled {
            if let Some(token) = live.get(&id) {
                token.cancel();
            }
        }
    }
}

fn run_job(
    ctx: JobContext,
    live: Arc<Mutex<HashMap<i64, CancelToken>>>,
    work: impl FnOnce(&JobContext) -> Result<(), ApiError>,
    on_end: impl FnOnce(i64, JobStatus, Option<&ApiError>),
) -> (JobStatus, Option<ApiError>) {
    let id = ctx.id;
    live_jobs(&live).insert(id, ctx.cancel.clone());
    let started = lock(&ctx.store).start_job(id).map_err(ApiError::from);
    let result = started.and_then(|_| {
        let _ = ctx.events.send(JobEvent::Started { job: id });
        catch_unwind(AssertUnwindSafe(|| work(&ctx))).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(ApiError::new(
                ErrorCode::JobPanicked,
                format!("job {id} stopped on an internal error: {what}"),
            ))
        })
    });
    live_jobs(&live).remove(&id);
    let (status, error) = match result {
        _ if ctx.is_cancelled() => (JobStatus::Cancelled, None),
        Ok(()) => (JobStatus::Succeeded, None),
        Err(e) => (JobStatus::Failed, Some(e)),
    };
    let stored = error
        .as_ref()
        .map(|e| (e.code.as_str(), e.message.as_str()));
    let recorded = lock(&ctx.store).finish_job(id, status, stored);
    let error = match recorded {
        Ok(()) => error,
        // The end could not be recorded: say so rather than pretend.
        Err(e) => Some(ApiError::from(e)),
    };
    on_end(id, status, error.as_ref());
    let _ = ctx.events.send(JobEvent::Finished {
        job: id,
        status,
        error: error.clone(),
    });
    (status, error)
}

#[cfg(test)]
#[path = "jobs_tests.rs"]
mod tests;
