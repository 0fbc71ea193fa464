//! Adapt's local OpenAI-compatible server: HTTP only, over `adapt-api`.
//!
//! [`Server::start`] listens (axum on a small tokio runtime of its own) and serves
//! `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions` (whole or streamed
//! as server-sent events), `GET /health` and `GET /openapi.json` (`openapi.json`, checked
//! against the handlers by a test). The API does the work: it resolves model names to
//! adapters, queues requests on its engine thread in order, reuses cached prompt prefixes
//! and cancels requests whose clients left. Here: the routes (`routes.rs`), the key check,
//! the state handlers share (`app.rs`), OpenAI's request bodies (`wire.rs`) and responses (`replies.rs`, `errors.rs`), streaming
//! and cancellation (`completions.rs`), and a log of every request for whoever started the
//! server (the CLI prints it, the app shows it). [`Server::stop`] cancels what is running,
//! stops listening and writes the prompt cache to disk for the next start.

mod app;
mod completions;
pub mod errors;
mod ids;
mod replies;
pub mod routes;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use adapt_api::{Adapt, ApiError, SavedPrompts, Served, ServerSettings};
use tokio::sync::{oneshot, Semaphore};

use app::App;
pub use errors::{HttpError, ServerError};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 8 << 20;

pub use app::RequestLog;

/// A running server.
pub struct Server {
    addr: SocketAddr,
    key: Option<String>,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts serving `served` on the host and port of `settings`, requiring `key` (if any)
    /// of clients; `on_request` hears of every completion request answered.
    pub fn start(
        adapt: Arc<Adapt>,
        served: Served,
        settings: &ServerSettings,
        key: Option<String>,
        on_request: RequestLog,
    ) -> Result<Server, ApiError> {
        settings.check()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("adapt-server")
            .enable_all()
            .build()
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        let addr = format!("{}:{}", settings.host, settings.port);
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(&addr))
            .map_err(|e| ServerError::Bind {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
        let bound = listener.local_addr().map_err(|e| ServerError::Bind {
            addr,
            message: e.to_string(),
        })?;
        let default_model = adapt
            .served_models(&served)?
            .into_iter()
            .find(|m| m.adapter == served.default_adapter)
            .map(|m| m.id)
            .unwrap_or_default();
        let app = Arc::new(App {
            adapt,
            served,
            default_model,
            key: key.clone(),
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            max_concurrency: settings.max_concurrency,
            max_tokens: settings.max_tokens,
            body_limit: BODY_LIMIT,
            on_request,
            live: Mutex::default(),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        let router = routes::router(app.clone());
        let thread = std::thread::Builder::new()
            .name("adapt-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    // An error here ends serving; the caller learns of it from `stop`.
                    let _ = axum::serve(listener, router)
                        .with_graceful_shutdown(shutdown)
                        .await;
                });
                runtime.shutdown_background();
            })
            .map_err(|e| ServerError::Runtime(e.to_string()))?;
        Ok(Server {
            addr: bound,
            key,
            app,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key clients must send, if any.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The model requests without a model name get.
    pub fn default_model(&self) -> &str {
        &self.app.default_model
    }

    /// Cancels the requests in progress, stops listening, and writes the prompt cache to
    /// disk so the next start is warm.
    pub fn stop(mut self) -> Result<SavedPrompts, ApiError> {
        self.halt();
        self.app.adapt.save_prompt_caches()
    }

    fn halt(&mut self) {
        self.app.cancel_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.halt();
    }
}
