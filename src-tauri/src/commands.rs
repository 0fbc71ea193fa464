//! The commands the page invokes, each a few lines over `adapt-api`. Errors reach the page as
//! the API's `{code, message}`. Every command runs its blocking API call on a worker thread.
//! Paths come from the page (a drop on the window, which page code can fake): each is checked
//! to exist and be a model, dataset file or adapter folder of a kind Adapt reads before use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use adapt_api::datasets::{self, CsvOptions, DataOptions, InspectReport};
use adapt_api::launch::Host;
use adapt_api::machines::{check_machine as check_host, find_adapt_program, MachineCheck};
use adapt_api::models::model_path;
use adapt_api::{
    Adapt, ApiError, ChatId, ChatMessage, ChatOptions, ChatState, ErrorCode, GenerateParams,
    Generation, GenerationEvent, ModelDetails, ModelInfo, RunDetails, RunRecord, SavedChat,
    SavedConversation, TopicChoice, TopicSettings, TrainCheck, TrainForm, TrainPlan, TrainPreset,
    TrainProgress,
};
use adapt_api::{
    AdapterEntry, Calibration, ConvertReport, DatasetRecord, ModelEntry, PullEvent, RemovalPlan,
    Variant,
};
use adapt_api::{GroupEstimate, GroupStart};
use adapt_api::{SavedPrompts, ServedRequest, ServerSettings};
use adapt_api::{SweepDetails, SweepForm, SweepProgress, SweepRecord};
use serde::Serialize;
use tauri::ipc::Channel;

use crate::server_panel::{ServerPanel, ServerStatus};
use tauri::State;

/// What every command shares: the API, and the Server panel's server.
pub struct Shared {
    adapt: Arc<Adapt>,
    server: Arc<ServerPanel>,
}

/// How long quitting waits for training runs to write their checkpoints.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

impl Shared {
    pub fn new(adapt: Adapt) -> Shared {
        Shared {
            adapt: Arc::new(adapt),
            server: Arc::default(),
        }
    }

    /// Stops training runs and pulls (runs write a checkpoint first) and the server (which
    /// writes its prompt cache), and closes every conversation, writing saved ones' caches
    /// (the app is quitting).
    pub fn close_all(&self) -> Answer<()> {
        self.adapt.stop_all_jobs(STOP_WAIT);
        self.server.stop()?;
        self.adapt.close_all_chats().map(|_| ())
    }
}

type Answer<T> = Result<T, ApiError>;

/// A callback that forwards each event to the page through `events` (a closed page drops it).
fn relay<T: Clone + tauri::ipc::IpcResponse>(events: Channel<T>) -> impl FnMut(&T) {
    move |e| {
        let _ = events.send(e.clone());
    }
}

/// Runs `work` with the API on a blocking worker thread.
async fn on_worker<T: Send + 'static>(
    shared: &State<'_, Shared>,
    work: impl FnOnce(&Adapt) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let adapt = shared.adapt.clone();
    tauri::async_runtime::spawn_blocking(move || work(&adapt))
        .await
        .map_err(|e| ApiError::new(ErrorCode::AppWorker, format!("the request stopped: {e}")))?
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
        let path = model_path(path.as_ref())?;
        let adapter = adapter.map(|s| a.resolve_adapter(&s)).transpose()?;
        a.load_model_with_adapter(&path, adapter.as_deref())
    })
    .await
}

/// A new conversation. `adapter`: absent, the one loaded with the model; `"base"`, the base
/// model; else a run id or adapter folder, attached for this conversation's turns only (A/B).
#[tauri::command]
pub async fn new_chat(
    shared: State<'_, Shared>,
    system: Option<String>,
    options: Option<ChatOptions>,
    adapter: Option<String>,
) -> Answer<ChatId> {
    on_worker(&shared, move |a| {
        let messages = system
            .filter(|s| !s.trim().is_empty())
            .map(|s| vec![ChatMessage::new("system", s)])
            .unwrap_or_default();
        let options = options.unwrap_or_default();
        match adapter.as_deref() {
            None => a.new_chat_with(messages, options),
            Some("base") => a.new_chat_on(messages, options, None),
            Some(spec) => a.new_chat_on(messages, options, Some(a.resolve_adapter(spec)?)),
        }
    })
    .await
}

/// Streams the reply to `text` through `events`; `stop_generation` ends it early. In a
/// conversation that keeps topics, `topic` says where the message goes (absent: where it fits
/// by meaning) and the first event says where it went.
#[tauri::command]
pub async fn send_message(
    shared: State<'_, Shared>,
    chat: ChatId,
    text: String,
    params: Option<GenerateParams>,
    topic: Option<TopicChoice>,
    events: Channel<GenerationEvent>,
) -> Answer<Generation> {
    let choice = topic.unwrap_or(TopicChoice::Auto);
    reply(&shared, params, events, move |a, p, on_event| {
        a.chat_in(chat, &text, choice, p, on_event)
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

/// Runs a reply on a worker, forwarding its events to `events`; `stop_generation` ends it.
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
    on_worker(shared, move |a| {
        // A closed page drops the channel; the reply goes on to its end in the conversation.
        let mut forward = |e| {
            let _ = events.send(e);
            true
        };
        run(a, &params.unwrap_or_default(), &mut forward)
    })
    .await
}

/// Stops the reply conversation `chat` is streaming (each reply has its own stop).
#[tauri::command]
pub fn stop_generation(shared: State<'_, Shared>, chat: ChatId) {
    shared.adapt.stop_reply(chat);
}

/// Turns `chat`'s topics on with `settings` (again: new settings) or off with `null`; the
/// turns so far make the first topic.
#[tauri::command]
pub async fn set_topics(
    shared: State<'_, Shared>,
    chat: ChatId,
    settings: Option<TopicSettings>,
) -> Answer<ChatState> {
    on_worker(&shared, move |a| a.set_topics(chat, settings)).await
}

/// Moves user message `index` (with its reply) to topic `to` (a topic or a new one); the
/// caches follow.
#[tauri::command]
pub async fn move_message(
    shared: State<'_, Shared>,
    chat: ChatId,
    index: usize,
    to: TopicChoice,
) -> Answer<ChatState> {
    on_worker(&shared, move |a| a.move_message(chat, index, to)).await
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

/// The datasets looked at or trained on, the most recent first.
#[tauri::command]
pub async fn list_datasets(shared: State<'_, Shared>) -> Answer<Vec<DatasetRecord>> {
    on_worker(&shared, |a| a.datasets()).await
}

/// The adapters training runs left, newest first.
#[tauri::command]
pub async fn list_adapters(shared: State<'_, Shared>) -> Answer<Vec<AdapterEntry>> {
    on_worker(&shared, |a| a.adapters()).await
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
    on_worker(&shared, move |a| {
        let path = datasets::dataset_file(path.as_ref())?;
        let model = model
            .map(|m| datasets::load_text_model(&model_path(m.as_ref())?))
            .transpose()?;
        let mut opts = DataOptions {
            max_errors: 50,
            ..DataOptions::default()
        };
        if let Some(n) = max_seq_length {
            opts.max_seq_length = n;
        }
        opts.import.csv = csv.unwrap_or_default();
        let report = datasets::inspect(&path, &opts, model.as_ref(), 5, &mut |_| {})?;
        a.record_dataset(&report)?;
        Ok(report)
    })
    .await
}

/// The lines around `line` of a dataset file (an error's line, with `context` on each side).
#[tauri::command]
pub async fn dataset_lines(
    shared: State<'_, Shared>,
    path: String,
    line: u64,
    context: u64,
) -> Answer<Vec<(u64, String)>> {
    on_worker(&shared, move |_| {
        datasets::lines_around(path.as_ref(), line, context.min(20))
    })
    .await
}

/// A run with its metrics (probe answers included) and checkpoints.
#[tauri::command]
pub async fn run_details(shared: State<'_, Shared>, id: i64) -> Answer<RunDetails> {
    on_worker(&shared, move |a| a.run(id)).await
}

/// The presets the Train view offers (the defaults live in the API).
#[tauri::command]
pub fn training_presets() -> Vec<TrainPreset> {
    adapt_api::training_presets()
}

/// The form's problems by field and the steps a run of it would take.
#[tauri::command]
pub async fn check_training(shared: State<'_, Shared>, form: TrainForm) -> Answer<TrainCheck> {
    on_worker(&shared, move |a| Ok(a.check_training(&form))).await
}

/// What training `form` would take (memory at the batch size that fits), without training.
#[tauri::command]
pub async fn plan_training(
    shared: State<'_, Shared>,
    form: TrainForm,
    events: Channel<TrainProgress>,
) -> Answer<TrainPlan> {
    on_worker(&shared, move |a| {
        a.plan_training(&form.checked_request()?, relay(events))
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
        a.calibrate_training(&form.checked_request()?, relay(events))
    })
    .await
}

/// Starts a training run; its progress streams through `events`, ending with how it ended.
/// Returns the run's id.
#[tauri::command]
pub async fn start_training(
    shared: State<'_, Shared>,
    form: TrainForm,
    events: Channel<TrainProgress>,
) -> Answer<i64> {
    let job = shared
        .adapt
        .start_training(form.checked_request()?, relay(events))?;
    Ok(job.run_id())
}

/// Resumes a stopped run from its newest checkpoint; its progress streams like a new run's.
#[tauri::command]
pub async fn resume_training(
    shared: State<'_, Shared>,
    run: i64,
    events: Channel<TrainProgress>,
) -> Answer<i64> {
    let job = shared.adapt.resume_training(run, relay(events))?;
    Ok(job.run_id())
}

/// Stops a run (whichever window or process started it); it writes a checkpoint first.
#[tauri::command]
pub fn stop_training(shared: State<'_, Shared>, run: i64) -> Answer<()> {
    shared.adapt.stop_run(run)
}

/// Every sweep, newest first.
#[tauri::command]
pub async fn list_sweeps(shared: State<'_, Shared>) -> Answer<Vec<SweepRecord>> {
    on_worker(&shared, |a| a.sweeps()).await
}

/// A sweep with its trials ranked (best first), its rungs and each trial's validation curve.
#[tauri::command]
pub async fn sweep_details(shared: State<'_, Shared>, id: i64) -> Answer<SweepDetails> {
    on_worker(&shared, move |a| a.sweep_details(id)).await
}

/// Starts a sweep of `form` (the Train form, the settings to search and the budget) on one
/// loaded model; its progress streams through `events`, ending with how it ended. Returns the
/// sweep's id.
#[tauri::command]
pub async fn start_sweep(
    shared: State<'_, Shared>,
    form: SweepForm,
    events: Channel<SweepProgress>,
) -> Answer<i64> {
    let job = shared
        .adapt
        .start_sweep(form.checked_request()?, relay(events))?;
    Ok(job.sweep_id())
}

/// Goes on with a stopped sweep where it stopped; its progress streams like a new sweep's.
#[tauri::command]
pub async fn resume_sweep(
    shared: State<'_, Shared>,
    id: i64,
    events: Channel<SweepProgress>,
) -> Answer<i64> {
    let job = shared.adapt.resume_sweep(id, relay(events))?;
    Ok(job.sweep_id())
}

/// Stops a sweep (whichever window or process runs it); its trial writes a checkpoint first.
#[tauri::command]
pub fn stop_sweep(shared: State<'_, Shared>, id: i64) -> Answer<()> {
    shared.adapt.stop_sweep(id)
}

/// The machines a group trains on: this one first, then the added hosts.
#[tauri::command]
pub async fn list_machines(shared: State<'_, Shared>) -> Answer<Vec<Host>> {
    on_worker(&shared, |a| a.machines()).await
}

/// Keeps the machines (this one first) as the app's hostfile.
#[tauri::command]
pub async fn save_machines(shared: State<'_, Shared>, hosts: Vec<Host>) -> Answer<()> {
    on_worker(&shared, move |a| a.save_machines(&hosts)).await
}

/// Whether `host` is ready: reachable, the same Adapt, `paths` (model, data) there.
#[tauri::command]
pub async fn check_machine(
    shared: State<'_, Shared>,
    host: Host,
    paths: Vec<String>,
) -> Answer<MachineCheck> {
    let paths: Vec<PathBuf> = paths.into_iter().map(PathBuf::from).collect();
    on_worker(&shared, move |_| {
        Ok(check_host(&host, app_folder().as_deref(), &paths))
    })
    .await
}

/// What `form` takes on each of `ranks` machines, and the group's speed bound from one
/// machine's measured `tokens_per_second`.
#[tauri::command]
pub async fn estimate_group(
    shared: State<'_, Shared>,
    form: TrainForm,
    ranks: usize,
    tokens_per_second: Option<f64>,
    events: Channel<TrainProgress>,
) -> Answer<GroupEstimate> {
    on_worker(&shared, move |a| {
        let request = form.checked_request()?;
        a.estimate_group(&request, ranks, tokens_per_second, relay(events))
    })
    .await
}

/// Starts `form` on the kept machines through the `adapt` program; rank 0 (this machine)
/// records the run, which shows in Runs.
#[tauri::command]
pub async fn start_group_training(
    shared: State<'_, Shared>,
    form: TrainForm,
) -> Answer<GroupStart> {
    on_worker(&shared, move |a| {
        let program = find_adapt_program(app_folder().as_deref())?;
        a.start_group_training(&form.checked_request()?, a.machines()?, program)
    })
    .await
}

/// The folder of the app's executable (where a bundle puts the `adapt` program).
fn app_folder() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
}

/// Copies a GGUF file or model folder (say, dropped on the window) into the library.
#[tauri::command]
pub async fn import_model(shared: State<'_, Shared>, path: String) -> Answer<ModelEntry> {
    on_worker(&shared, move |a| {
        a.import_model(&model_path(path.as_ref())?)
    })
    .await
}

/// What deleting `name` would remove (the files Adapt wrote for it and their bytes, and what
/// stays), or why it is refused: the page shows it before the person confirms.
#[tauri::command]
pub async fn removal_plan(shared: State<'_, Shared>, name: String) -> Answer<RemovalPlan> {
    on_worker(&shared, move |a| a.removal_plan(&name)).await
}

/// Deletes what `removal_plan` showed for `name`; `confirmation` is that plan's, so files that
/// changed since are refused rather than deleted unseen.
#[tauri::command]
pub async fn delete_model(
    shared: State<'_, Shared>,
    name: String,
    confirmation: String,
) -> Answer<RemovalPlan> {
    on_worker(&shared, move |a| a.remove_model(&name, &confirmation)).await
}

/// Writes a converted, quantized or dequantized copy of a model into the library; each step
/// streams through `events`.
#[tauri::command]
pub async fn make_variant(
    shared: State<'_, Shared>,
    path: String,
    variant: Variant,
    events: Channel<String>,
) -> Answer<ConvertReport> {
    on_worker(&shared, move |a| {
        a.make_variant(&model_path(path.as_ref())?, variant, |step| {
            let _ = events.send(step.to_string());
        })
    })
    .await
}

/// Starts pulling `spec` (`ORG/NAME[@REVISION]`, or one `file` of it) into the library;
/// its progress streams through `events`, ending with how it ended. Returns the job's id.
/// Pulling again after a cancel resumes the partial files.
#[tauri::command]
pub async fn pull_model(
    shared: State<'_, Shared>,
    spec: String,
    file: Option<String>,
    events: Channel<PullEvent>,
) -> Answer<i64> {
    let file = file.filter(|f| !f.trim().is_empty());
    let job = shared
        .adapt
        .pull_model(spec.trim(), file.as_deref(), relay(events))?;
    Ok(job.id())
}

/// Stops a pull; its partial files stay for the next pull of the same model.
#[tauri::command]
pub fn cancel_pull(shared: State<'_, Shared>, job: i64) -> Answer<()> {
    shared.adapt.cancel_job(job).map(|_| ())
}

/// The Server panel: the server's state, its settings and its recent requests.
#[tauri::command]
pub async fn server_status(shared: State<'_, Shared>) -> Answer<ServerStatus> {
    Ok(shared.server.status(&shared.adapt))
}

/// Saves `settings` and starts the local server with them (loading its model); each request
/// it answers is sent to `events`.
#[tauri::command]
pub async fn start_server(
    shared: State<'_, Shared>,
    settings: ServerSettings,
    events: Channel<ServedRequest>,
) -> Answer<ServerStatus> {
    on_server(&shared, move |s, a| s.start(a, settings, events)).await
}

/// Stops the local server; its prompt cache is written to disk for the next start.
#[tauri::command]
pub async fn stop_server(shared: State<'_, Shared>) -> Answer<Option<SavedPrompts>> {
    on_server(&shared, |s, _| s.stop()).await
}

/// Runs `work` with the Server panel's server on a blocking worker thread.
async fn on_server<T: Send + 'static>(
    shared: &State<'_, Shared>,
    work: impl FnOnce(&ServerPanel, &Arc<Adapt>) -> Answer<T> + Send + 'static,
) -> Answer<T> {
    let (server, adapt) = (shared.server.clone(), shared.adapt.clone());
    tauri::async_runtime::spawn_blocking(move || work(&server, &adapt))
        .await
        .map_err(|e| ApiError::new(ErrorCode::AppWorker, format!("the request stopped: {e}")))?
}

#[cfg(test)]
#[path = "command_tests.rs"]
mod tests;
