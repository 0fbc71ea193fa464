//! The commands the page invokes, each a few lines over `adapt-api`. Errors reach the page as
//! the API's `{code, message}`. Every command runs its blocking API call on a worker thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use adapt_api::datasets::{self, CsvOptions, DataOptions, InspectReport};
use adapt_api::{
    Adapt, ApiError, ChatId, ChatMessage, ChatOptions, ChatState, GenerateParams, Generation,
    GenerationEvent, ModelDetails, ModelInfo, RunDetails, RunRecord, SavedChat, SavedConversation,
    TrainForm, TrainJob, TrainPlan, TrainProgress,
};
use adapt_api::{Calibration, CancelToken};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

/// What every command shares: the API, the stop flag of the reply in progress and the
/// training runs this window started (by run id).
pub struct Shared {
    adapt: Arc<Adapt>,
    stop: Arc<AtomicBool>,
    training: Arc<Mutex<HashMap<i64, CancelToken>>>,
}

impl Shared {
    pub fn new(adapt: Adapt) -> Shared {
        Shared {
            adapt: Arc::new(adapt),
            stop: Arc::new(AtomicBool::new(false)),
            training: Arc::default(),
        }
    }

    /// Stops training runs (each writes a checkpoint) and closes every conversation, writing
    /// saved ones' caches (the app is quitting).
    pub fn close_all(&self) -> Answer<()> {
        self.stop.store(true, Ordering::Relaxed);
        for token in self.runs().values() {
            token.cancel();
        }
        self.adapt.close_all_chats().map(|_| ())
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, CancelToken>> {
        self.training.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `job`'s stop token until it ends; returns its run id.
    fn track(&self, job: TrainJob) -> i64 {
        let run = job.run_id();
        self.runs().insert(run, job.cancel_token());
        let training = self.training.clone();
        std::thread::spawn(move || {
            // The run's outcome is in its record; the page reads it from there.
            let _ = job.wait();
            training
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run);
        });
        run
    }
}

type Answer<T> = Result<T, ApiError>;

/// Runs `work` with the API on a blocking worker thread.
async fn on_worker<T: Send + 'static>(
    shared: &State<'_, Shared>,
    work: impl FnOnce(&Adapt) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let adapt = shared.adapt.clone();
    tauri::async_runtime::spawn_blocking(move || work(&adapt))
        .await
        .map_err(|e| ApiError::new("app.worker", format!("the request stopped: {e}")))?
}

#[tauri::command]
pub async fn list_models(shared: State<'_, Shared>) -> Answer<Vec<ModelDetails>> {
    on_worker(&shared, |a| Ok(a.models())).await
}

#[tauri::command]
pub async fn load_model(
    shared: State<'_, Shared>,
    path: String,
    adapter: Option<String>,
) -> Answer<ModelInfo> {
    on_worker(&shared, move |a| {
        let adapter = adapter.map(|s| a.resolve_adapter(&s)).transpose()?;
        a.load_model_with_adapter(path.as_ref(), adapter.as_deref())
    })
    .await
}

#[tauri::command]
pub async fn new_chat(
    shared: State<'_, Shared>,
    system: Option<String>,
    options: Option<ChatOptions>,
) -> Answer<ChatId> {
    on_worker(&shared, move |a| {
        let messages = system
            .filter(|s| !s.trim().is_empty())
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        a.new_chat_with(messages, options.unwrap_or_default())
    })
    .await
}

/// Streams the reply to `text` through `events`; `stop_generation` ends it early.
#[tauri::command]
pub async fn send_message(
    shared: State<'_, Shared>,
    chat: ChatId,
    text: String,
    params: Option<GenerateParams>,
    events: Channel<GenerationEvent>,
) -> Answer<Generation> {
    reply(&shared, params, events, move |a, p, on_event| {
        a.chat(chat, &text, p, on_event)
    })
    .await
}

/// A new reply to the last message, streamed like `send_message`.
#[tauri::command]
pub async fn regenerate(
    shared: State<'_, Shared>,
    chat: ChatId,
    params: Option<GenerateParams>,
    events: Channel<GenerationEvent>,
) -> Answer<Generation> {
    reply(&shared, params, events, move |a, p, on_event| {
        a.regenerate(chat, p, on_event)
    })
    .await
}

/// Runs a reply on a worker, forwarding its events to `events` until `stop_generation`.
async fn reply(
    shared: &State<'_, Shared>,
    params: Option<GenerateParams>,
    events: Channel<GenerationEvent>,
    run: impl FnOnce(
            &Adapt,
            &GenerateParams,
            &mut dyn FnMut(GenerationEvent) -> bool,
        ) -> Answer<Generation>
        + Send
        + 'static,
) -> Answer<Generation> {
    let stop = shared.stop.clone();
    stop.store(false, Ordering::Relaxed);
    on_worker(shared, move |a| {
        let mut forward = |e| {
            let _ = events.send(e);
            !stop.load(Ordering::Relaxed)
        };
        run(a, &params.unwrap_or_default(), &mut forward)
    })
    .await
}

#[tauri::command]
pub fn stop_generation(shared: State<'_, Shared>) {
    shared.stop.store(true, Ordering::Relaxed);
}

#[tauri::command]
pub async fn chat_state(shared: State<'_, Shared>, chat: ChatId) -> Answer<ChatState> {
    on_worker(&shared, move |a| a.chat_state(chat)).await
}

#[tauri::command]
pub async fn save_chat(shared: State<'_, Shared>, chat: ChatId, name: String) -> Answer<SavedChat> {
    on_worker(&shared, move |a| a.save_chat(chat, &name)).await
}

/// A reopened conversation: its id and what was restored.
#[derive(Serialize, ts_rs::TS)]
pub struct Opened {
    chat: ChatId,
    saved: SavedChat,
}

#[tauri::command]
pub async fn open_chat(shared: State<'_, Shared>, name: String) -> Answer<Opened> {
    on_worker(&shared, move |a| {
        let (chat, saved) = a.open_chat(&name)?;
        Ok(Opened { chat, saved })
    })
    .await
}

#[tauri::command]
pub async fn list_chats(shared: State<'_, Shared>) -> Answer<Vec<SavedConversation>> {
    on_worker(&shared, |a| a.list_chats()).await
}

#[tauri::command]
pub async fn fork_chat(shared: State<'_, Shared>, chat: ChatId, turns: usize) -> Answer<ChatId> {
    on_worker(&shared, move |a| a.fork_chat(chat, turns)).await
}

#[tauri::command]
pub async fn close_chat(shared: State<'_, Shared>, chat: ChatId) -> Answer<Option<SavedChat>> {
    on_worker(&shared, move |a| a.close_chat(chat)).await
}

#[tauri::command]
pub async fn list_runs(shared: State<'_, Shared>) -> Answer<Vec<RunRecord>> {
    on_worker(&shared, |a| a.runs()).await
}

/// A dataset file's format, counts, errors (with their lines), token lengths against
/// `max_seq_length` and first examples with their trained tokens marked — tokenized with the
/// model at `model` when given. Only CSV / TSV / JSONL files are read (paths may come from a
/// drop on the window).
#[tauri::command]
pub async fn inspect_dataset(
    shared: State<'_, Shared>,
    path: String,
    model: Option<String>,
    max_seq_length: Option<u32>,
    csv: Option<CsvOptions>,
) -> Answer<InspectReport> {
    on_worker(&shared, move |_| {
        let path = std::path::PathBuf::from(path);
        let known = ["csv", "tsv", "jsonl", "json"];
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        if !path.is_file() || !known.contains(&ext.to_ascii_lowercase().as_str()) {
            return Err(ApiError::new(
                "app.not_a_dataset",
                format!("{} is not a CSV, TSV or JSONL file", path.display()),
            ));
        }
        let model = model
            .map(|m| datasets::load_text_model(m.as_ref()))
            .transpose()?;
        let mut opts = DataOptions {
            max_errors: 50,
            ..DataOptions::default()
        };
        if let Some(n) = max_seq_length {
            opts.max_seq_length = n;
        }
        opts.import.csv = csv.unwrap_or_default();
        datasets::inspect(&path, &opts, model.as_ref(), 5, &mut |_| {})
    })
    .await
}

/// A run with its metrics (probe answers included) and checkpoints.
#[tauri::command]
pub async fn run_details(shared: State<'_, Shared>, id: i64) -> Answer<RunDetails> {
    on_worker(&shared, move |a| a.run(id)).await
}

/// What training `form` would take (memory at the batch size that fits), without training.
#[tauri::command]
pub async fn plan_training(
    shared: State<'_, Shared>,
    form: TrainForm,
    events: Channel<TrainProgress>,
) -> Answer<TrainPlan> {
    on_worker(&shared, move |a| {
        a.plan_training(&form.request(datasets::default_cache_root()), |p| {
            let _ = events.send(p.clone());
        })
    })
    .await
}

/// A few real steps of `form`: measured peak memory and speed beside the estimate.
#[tauri::command]
pub async fn calibrate_training(
    shared: State<'_, Shared>,
    form: TrainForm,
    events: Channel<TrainProgress>,
) -> Answer<Calibration> {
    on_worker(&shared, move |a| {
        a.calibrate_training(&form.request(datasets::default_cache_root()), |p| {
            let _ = events.send(p.clone());
        })
    })
    .await
}

/// Starts a training run; its progress streams through `events`. Returns the run's id.
#[tauri::command]
pub async fn start_training(
    shared: State<'_, Shared>,
    form: TrainForm,
    events: Channel<TrainProgress>,
) -> Answer<i64> {
    let request = form.request(datasets::default_cache_root());
    let job = shared.adapt.start_training(request, move |p| {
        let _ = events.send(p.clone());
    })?;
    Ok(shared.track(job))
}

/// Resumes a stopped run from its newest checkpoint.
#[tauri::command]
pub async fn resume_training(
    shared: State<'_, Shared>,
    run: i64,
    events: Channel<TrainProgress>,
) -> Answer<i64> {
    let job = shared.adapt.resume_training(run, move |p| {
        let _ = events.send(p.clone());
    })?;
    Ok(shared.track(job))
}

/// Stops a run this window started; it writes a checkpoint first.
#[tauri::command]
pub fn stop_training(shared: State<'_, Shared>, run: i64) -> Answer<()> {
    match shared.runs().get(&run) {
        Some(token) => {
            token.cancel();
            Ok(())
        }
        None => Err(ApiError::new(
            "app.not_training",
            format!("run {run} is not training in this window"),
        )),
    }
}
