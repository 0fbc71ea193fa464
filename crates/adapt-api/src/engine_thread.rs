//! The engine thread: the only thread that touches MLX. It owns the loaded model and the
//! conversations ([`EngineState`]) and runs jobs — boxed closures over that state — in the
//! order they arrive, until every handle is dropped.
//!
//! A use case sends its engine-side function with [`Engine::call`] (a reply) or
//! [`Engine::stream`] (generated text as it comes, then a reply); each area module keeps that
//! function next to its public method. A panic inside a job (MLX code can panic) becomes an
//! [`ApiError`] with code `engine.panicked` for its caller, and the thread goes on with the
//! next job.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use adapt_engine::adapters::AdapterShelf;
use adapt_engine::{ChatPool, LoadedModel, TokenSink};

use crate::error::{ApiError, ErrorCode};

/// What the engine thread owns.
#[derive(Default)]
pub(crate) struct EngineState {
    pub model: Option<LoadedModel>,
    pub chats: ChatPool,
    /// Adapters taken off the model, kept for requests that name them again.
    pub adapters: AdapterShelf,
    /// A sweep's base model (its file and the model as it trains), loaded once for every
    /// trial and dropped when the sweep ends.
    pub sweep_base: Option<(
        std::path::PathBuf,
        adapt_engine::train::Precision,
        LoadedModel,
    )>,
}

impl EngineState {
    /// The loaded model, or the error that says to load one.
    pub fn loaded(&self) -> Result<&LoadedModel, ApiError> {
        self.model.as_ref().ok_or_else(ApiError::no_model)
    }
}

/// Identifies a conversation held by the engine thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(transparent)]
pub struct ChatId(pub(crate) u64);

/// What a generation streams back while it runs.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum GenerationEvent {
    /// Prompt tokens processed so far.
    Prefill { done: usize, total: usize },
    /// New final text.
    Text(String),
    /// The topic the message went to, and why (conversations that keep topics; before any
    /// text).
    Routed(adapt_engine::Routing),
}

/// Work for the engine thread.
type Job = Box<dyn FnOnce(&mut EngineState) + Send>;

/// The engine thread, owned by `Adapt`. Dropping it lets the thread finish its queue and
/// stop once no [`EngineHandle`] is left.
pub(crate) struct Engine {
    handle: EngineHandle,
    thread: Option<JoinHandle<()>>,
}

/// A way to send work to the engine thread, for any thread (a job's, say).
#[derive(Clone)]
pub(crate) struct EngineHandle {
    jobs: Sender<Job>,
}

impl Engine {
    pub fn start() -> Result<Engine, ApiError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("adapt-engine".into())
            .spawn(move || {
                let mut state = EngineState::default();
                for job in rx {
                    job(&mut state);
                }
            })
            .map_err(|e| {
                ApiError::new(
                    ErrorCode::ApiThread,
                    format!("cannot start the engine: {e}"),
                )
            })?;
        Ok(Engine {
            handle: EngineHandle { jobs: tx },
            thread: Some(thread),
        })
    }

    /// A handle for another thread.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

impl std::ops::Deref for Engine {
    type Target = EngineHandle;

    fn deref(&self) -> &EngineHandle {
        &self.handle
    }
}

impl EngineHandle {
    fn send(&self, job: Job) -> Result<(), ApiError> {
        self.jobs.send(job).map_err(|_| ApiError::engine_gone())
    }

    /// Queues `work` without waiting for it.
    pub fn post(
        &self,
        work: impl FnOnce(&mut EngineState) + Send + 'static,
    ) -> Result<(), ApiError> {
        self.send(Box::new(move |state: &mut EngineState| {
            // Nobody waits for a posted job: a panic is only kept from the thread.
            let _ = guarded(state, |s| {
                work(s);
                Ok(())
            });
        }))
    }

    /// Runs `work` on the engine thread and waits for its answer.
    pub fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut EngineState) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let (reply, answer) = mpsc::channel();
        self.send(Box::new(move |state: &mut EngineState| {
            // A send fails only when the caller stopped waiting; there is nobody to tell.
            let _ = reply.send(guarded(state, work));
        }))?;
        answer.recv().map_err(|_| ApiError::engine_gone())?
    }

    /// Runs `work` on the engine thread, handing each event it emits to `on_event` as it
    /// comes, and waits for its answer.
    pub fn relay<E: Send + 'static, T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut EngineState, &mut dyn FnMut(E)) -> Result<T, ApiError> + Send + 'static,
        mut on_event: impl FnMut(E),
    ) -> Result<T, ApiError> {
        let (events, received) = mpsc::channel();
        let (reply, answer) = mpsc::channel();
        self.send(Box::new(move |state: &mut EngineState| {
            let mut emit = |e: E| {
                let _ = events.send(e);
            };
            let result = guarded(state, |s| work(s, &mut emit));
            // The events end before the answer is sent.
            drop(events);
            let _ = reply.send(result);
        }))?;
        for event in received {
            on_event(event);
        }
        answer.recv().map_err(|_| ApiError::engine_gone())?
    }

    /// Runs `work` on the engine thread with a sink that streams generated text back; each
    /// event goes to `on_event`, which returns `false` to stop the generation.
    pub fn stream<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut EngineState, &mut EventSink<'_>) -> Result<T, ApiError> + Send + 'static,
        mut on_event: impl FnMut(GenerationEvent) -> bool,
    ) -> Result<T, ApiError> {
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = cancel.clone();
        self.relay(
            move |state, emit| work(state, &mut EventSink { emit, cancel: stop }),
            |event| {
                if !on_event(event) {
                    cancel.store(true, Ordering::Relaxed);
                }
            },
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Drop this sender (by replacing it with one whose thread is gone): the engine thread
        // ends when the last one is dropped.
        self.handle.jobs = mpsc::channel().0;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs one job over the state; a panic becomes `engine.panicked` and the thread lives on.
fn guarded<T>(
    state: &mut EngineState,
    work: impl FnOnce(&mut EngineState) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    catch_unwind(AssertUnwindSafe(|| work(state))).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Err(ApiError::new(
            ErrorCode::EnginePanicked,
            format!("the engine stopped that request on an internal error ({what}); it is ready for the next one"),
        ))
    })
}

/// Forwards generated text to the caller and reports its cancel flag.
pub(crate) struct EventSink<'a> {
    emit: &'a mut dyn FnMut(GenerationEvent),
    cancel: Arc<AtomicBool>,
}

impl EventSink<'_> {
    /// Hands on where a message was routed.
    pub(crate) fn routed(&mut self, routing: &adapt_engine::Routing) {
        (self.emit)(GenerationEvent::Routed(routing.clone()));
    }
}

impl TokenSink for EventSink<'_> {
    fn text(&mut self, text: &str) -> bool {
        (self.emit)(GenerationEvent::Text(text.to_string()));
        !self.cancel.load(Ordering::Relaxed)
    }

    fn prefill(&mut self, done: usize, total: usize) {
        (self.emit)(GenerationEvent::Prefill { done, total });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_a_job_is_an_error_and_the_thread_goes_on() {
        let engine = Engine::start().unwrap();
        let e = engine
            .call(|_| -> Result<(), ApiError> {
                // A shape that does not hold its data: mlx-rs refuses it with a panic.
                let _ = adapt_engine::mlx_rs::Array::from_slice(&[1.0f32, 2.0], &[3]);
                Ok(())
            })
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::EnginePanicked);
        assert!(e.message.contains("assertion"), "{}", e.message);
        // The same thread answers the next job, with its state intact.
        let answer = engine
            .call(|state| Ok(state.model.is_none() && state.chats.ids().is_empty()))
            .unwrap();
        assert!(answer);
        // A streaming job that panics ends its stream and answers with the error too.
        let e = engine
            .stream(
                |_, sink| -> Result<(), ApiError> {
                    sink.text("before");
                    panic!("mid-stream");
                },
                |_| true,
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::EnginePanicked);
        assert!(e.message.contains("mid-stream"), "{}", e.message);
    }
}
