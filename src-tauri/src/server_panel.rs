//! The Server panel's server: at most one `adapt_server::Server` over the app's own API (so
//! starting it loads its model into the app's engine), its recent requests for the panel's log
//! (the newest 200), and the channel the page follows them on.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use adapt_api::{Adapt, ApiError, RestoredPrompts, SavedPrompts, ServedRequest, ServerSettings};
use adapt_server::Server;
use serde::Serialize;
use tauri::ipc::Channel;

/// Requests the log keeps.
const LOG_LENGTH: usize = 200;

/// What the panel shows.
#[derive(Debug, Clone, Serialize, ts_rs::TS)]
pub struct ServerStatus {
    pub running: bool,
    /// `http://HOST:PORT/v1`, while running.
    pub address: Option<String>,
    /// The key clients must send, if any.
    pub key: Option<String>,
    /// The model name requests without one get.
    pub model: Option<String>,
    /// Prompt caches brought back from disk when it started.
    pub restored: Option<RestoredPrompts>,
    /// The saved settings.
    pub settings: ServerSettings,
    /// Recent requests, oldest first.
    pub log: Vec<ServedRequest>,
}

type Listener = Arc<Mutex<Option<Channel<ServedRequest>>>>;

#[derive(Default)]
pub struct ServerPanel {
    running: Mutex<Option<(Server, RestoredPrompts)>>,
    log: Arc<Mutex<VecDeque<ServedRequest>>>,
    listener: Listener,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerPanel {
    /// Saves `settings` and starts serving with them (stopping a running server first); each
    /// request answered goes to `events`.
    pub fn start(
        &self,
        adapt: &Arc<Adapt>,
        settings: ServerSettings,
        events: Channel<ServedRequest>,
    ) -> Result<ServerStatus, ApiError> {
        self.stop()?;
        adapt.set_server_settings(&settings)?;
        if let Some(mb) = settings.cache_memory_mb {
            adapt.set_cache_budgets(Some(mb << 20), None)?;
        }
        let model = settings
            .model
            .clone()
            .ok_or_else(|| adapt_server_error("choose a model to serve"))?;
        let key = adapt.server_key(&settings)?;
        let served = adapt.start_serving(&model, settings.adapter.as_deref())?;
        let restored = served.restored.clone();
        *lock(&self.listener) = Some(events);
        let (log, listener) = (self.log.clone(), self.listener.clone());
        let on_request = Arc::new(move |r: ServedRequest| {
            if let Some(events) = lock(&listener).as_ref() {
                let _ = events.send(r.clone());
            }
            let mut log = lock(&log);
            log.push_back(r);
            while log.len() > LOG_LENGTH {
                log.pop_front();
            }
        });
        let server = Server::start(adapt.clone(), served, &settings, key, on_request)?;
        *lock(&self.running) = Some((server, restored));
        Ok(self.status(adapt))
    }

    /// Stops the server, writing its prompt cache to disk.
    pub fn stop(&self) -> Result<Option<SavedPrompts>, ApiError> {
        let running = lock(&self.running).take();
        *lock(&self.listener) = None;
        running.map(|(server, _)| server.stop()).transpose()
    }

    pub fn status(&self, adapt: &Adapt) -> ServerStatus {
        let running = lock(&self.running);
        let server = running.as_ref();
        ServerStatus {
            running: server.is_some(),
            address: server.map(|(s, _)| format!("http://{}/v1", s.addr())),
            key: server.and_then(|(s, _)| s.key().map(str::to_string)),
            model: server.map(|(s, _)| s.default_model().to_string()),
            restored: server.map(|(_, r)| r.clone()),
            settings: adapt.server_settings(),
            log: lock(&self.log).iter().cloned().collect(),
        }
    }
}

fn adapt_server_error(message: &str) -> ApiError {
    ApiError::new(adapt_api::ErrorCode::RequestInvalid, message)
}
