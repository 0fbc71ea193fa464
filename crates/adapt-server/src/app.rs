//! What every handler shares: the API, the model served, the limits, the request log and the
//! cancel flags of the requests in progress.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use adapt_api::{Adapt, CancelToken, Served, ServedRequest};
use tokio::sync::Semaphore;

/// Receives each request the server answered.
pub type RequestLog = Arc<dyn Fn(ServedRequest) + Send + Sync>;

/// What every handler shares.
pub(crate) struct App {
    pub adapt: Arc<Adapt>,
    pub served: Served,
    /// The name of what requests without a model get.
    pub default_model: String,
    pub key: Option<String>,
    pub permits: Arc<Semaphore>,
    pub max_concurrency: usize,
    pub max_tokens: usize,
    pub body_limit: usize,
    pub on_request: RequestLog,
    /// The cancel flags of requests in progress, for stopping.
    pub live: Mutex<(u64, HashMap<u64, CancelToken>)>,
}

impl App {
    pub fn log(&self, entry: ServedRequest) {
        (self.on_request)(entry);
    }

    /// A cancel flag for a new request, and its number.
    pub fn register(&self) -> (u64, CancelToken) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.0 += 1;
        let token = CancelToken::default();
        let id = live.0;
        live.1.insert(id, token.clone());
        (id, token)
    }

    pub fn forget(&self, id: u64) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.1.remove(&id);
    }

    pub fn cancel_all(&self) {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.1.values().for_each(CancelToken::cancel);
    }
}
