//! Serving: what the local OpenAI-compatible server asks of the engine.
//!
//! [`Adapt::start_serving`] loads the base model once (and the prompt caches a previous run
//! left on disk, `prompt_files.rs`); every request then names the base or one of its adapters
//! ([`Adapt::served_models`], [`Adapt::served_adapter`]) and [`Adapt::complete`] queues it on
//! the engine thread, which runs requests one at a time in the order they came. There the
//! adapter is swapped onto the base weights (adapters taken off stay in memory on a shelf),
//! the prompt is rendered with the chat template (tools included), and the longest prefix of
//! it that any earlier request left in the prompt cache — under the same model, adapter and
//! template — is reused, so a client resending its whole conversation each turn only pays
//! for the new tokens. The finished sequence goes back into the cache (replacing the shorter
//! one it extends), which stays within the memory budget, least recently used leaving first.
//! A request whose client left is skipped or stopped through its [`CancelToken`].

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use adapt_engine::{
    generate, GenerateParams, GenerationStats, LoadOptions, ModelInfo, SequenceCache, StopReason,
    TokenLogprob, TokenSink, Tokenizer,
};
use serde::Serialize;
use serde_json::Value;

use crate::adapt::Adapt;
use crate::engine_thread::EngineState;
use crate::error::{ApiError, ErrorCode};
use crate::jobs::CancelToken;
use crate::prompt_files::{prompt_key, RestoredPrompts};
use crate::serve_prompt::{
    bad_field, template_extra, template_messages, template_tools, ToolCall, ToolFilter, ToolFormat,
};

/// The model a server serves, loaded.
#[derive(Debug, Clone)]
pub struct Served {
    pub model: ModelInfo,
    /// The adapter requests get when they name no model.
    pub default_adapter: Option<PathBuf>,
    /// Prompt caches brought back from disk.
    pub restored: RestoredPrompts,
}

/// A model name requests can use: the base, or the base with one of its adapters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServedModel {
    /// `base`, `base:run-N` (a training run's adapter) or `base:NAME`.
    pub id: String,
    /// The adapter folder (`None`: the base model).
    pub adapter: Option<PathBuf>,
    /// When it was made, in seconds since 1970.
    pub created: i64,
}

/// A request the server answered, for its log.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ServedRequest {
    /// When it came, in milliseconds since 1970.
    pub at_ms: i64,
    /// `POST /v1/chat/completions`, …
    pub endpoint: String,
    /// The model name it asked for.
    pub model: String,
    /// The HTTP status it got.
    pub status: u16,
    pub stream: bool,
    pub prompt_tokens: usize,
    /// Prompt tokens whose keys and values came from the prompt cache.
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    /// From its arrival (queue wait included) to its first generated token, in seconds.
    pub time_to_first_token: f64,
    /// Generated tokens per second while decoding.
    pub tokens_per_second: f64,
    /// From its arrival to its last byte, in seconds.
    pub seconds: f64,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

/// One request: which adapter, what prompt, how to generate.
#[derive(Debug, Clone)]
pub struct CompletionRequest {
    /// The adapter folder (`None`: the base model), from [`Adapt::served_adapter`].
    pub adapter: Option<PathBuf>,
    pub prompt: PromptInput,
    pub params: GenerateParams,
    /// Report each generated token's log probability with this many alternatives.
    pub logprobs: Option<usize>,
}

/// A request's prompt.
#[derive(Debug, Clone)]
pub enum PromptInput {
    /// OpenAI-shaped messages, and tools for the template to describe.
    Chat {
        messages: Vec<Value>,
        tools: Vec<Value>,
    },
    /// Text run as it is (tokenized with the tokenizer's own special tokens).
    Text(String),
}

/// What a completion streams while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CompletionEvent {
    /// Text to show.
    Text(String),
    /// A generated token's log probability (it comes before the token's text).
    Logprob(TokenText),
}

/// A token as text with its log probability (and, for the generated one, the most likely
/// alternatives).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenText {
    pub token: String,
    pub logprob: f32,
    pub bytes: Vec<u8>,
    pub top: Vec<TokenText>,
}

/// Why a completion ended, as OpenAI's API says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Stop,
    Length,
    ToolCalls,
    Cancelled,
}

impl Finish {
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
            Finish::Cancelled => "cancelled",
        }
    }
}

/// A finished completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text shown (without tool calls).
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    pub finish: Finish,
    pub stats: GenerationStats,
}

impl Adapt {
    /// Loads `model` to serve (adapters are attached per request, so the base is loaded
    /// alone), checks the default adapter `adapter` (a run id or a folder), and brings back
    /// the prompt caches a previous run left on disk.
    pub fn start_serving(&self, model: &Path, adapter: Option<&str>) -> Result<Served, ApiError> {
        let default_adapter = adapter.map(|a| self.resolve_adapter(a)).transpose()?;
        if let Some(dir) = &default_adapter {
            adapt_engine::adapters::read_config(dir)?;
        }
        let path = model.to_path_buf();
        let info = self.engine.call(move |state| {
            state.model = None;
            state.chats.clear();
            state.adapters.clear();
            let lm = adapt_engine::load(&path, &LoadOptions::default())?;
            let info = lm.info.clone();
            state.model = Some(lm);
            Ok(info)
        })?;
        let restored = self.restore_prompt_caches()?;
        Ok(Served {
            model: info,
            default_adapter,
            restored,
        })
    }

    /// The names requests can use: the base model, then the adapters trained on it (newest
    /// first) and the default adapter.
    pub fn served_models(&self, served: &Served) -> Result<Vec<ServedModel>, ApiError> {
        let base = base_id(&served.model.path);
        let created = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs() as i64)
        };
        let mut models = vec![ServedModel {
            id: base.clone(),
            adapter: None,
            created: created(&served.model.path),
        }];
        let same = |a: &Path, b: &Path| {
            a == b
                || a.canonicalize()
                    .ok()
                    .is_some_and(|a| Some(a) == b.canonicalize().ok())
        };
        for entry in self.adapters().unwrap_or_default() {
            if !entry
                .base_model
                .as_deref()
                .is_some_and(|m| same(m, &served.model.path))
            {
                continue;
            }
            let suffix = match entry.adapter.run_id {
                Some(run) => format!("run-{run}"),
                None => entry.adapter.name.replace(char::is_whitespace, "-"),
            };
            models.push(ServedModel {
                id: format!("{base}:{suffix}"),
                created: entry.adapter.created_at / 1000,
                adapter: Some(entry.adapter.path),
            });
        }
        if let Some(dir) = &served.default_adapter {
            if !models
                .iter()
                .any(|m| m.adapter.as_deref().is_some_and(|a| same(a, dir)))
            {
                let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                models.push(ServedModel {
                    id: format!("{base}:{}", name.unwrap_or_else(|| "adapter".into())),
                    adapter: Some(dir.clone()),
                    created: created(dir),
                });
            }
        }
        Ok(models)
    }

    /// The adapter a request naming `model` gets (`None`: the base model); no name, or an
    /// empty one, gets the default adapter.
    pub fn served_adapter(
        &self,
        served: &Served,
        model: Option<&str>,
    ) -> Result<Option<PathBuf>, ApiError> {
        let Some(name) = model.filter(|m| !m.is_empty()) else {
            return Ok(served.default_adapter.clone());
        };
        let models = self.served_models(served)?;
        match models.iter().find(|m| m.id == name) {
            Some(m) => Ok(m.adapter.clone()),
            None => Err(ApiError::new(
                ErrorCode::ServeUnknownModel,
                format!(
                    "the model '{name}' does not exist; this server serves {}",
                    models
                        .iter()
                        .map(|m| m.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// Runs `request` on the engine thread (after the requests queued before it), streaming
    /// its text and log probabilities to `on_event`; `cancel` stops it (or skips it, while
    /// it waits).
    pub fn complete(
        &self,
        request: CompletionRequest,
        cancel: CancelToken,
        on_event: impl FnMut(CompletionEvent),
    ) -> Result<Completion, ApiError> {
        self.engine.relay(
            move |state, emit| complete_on_engine(state, request, cancel, emit),
            on_event,
        )
    }
}

/// The name of the base model: its file's or folder's name without the extension.
fn base_id(path: &Path) -> String {
    let name = if path.is_dir() {
        path.file_name()
    } else {
        path.file_stem()
    };
    name.map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned())
}

/// On the engine thread: one request, from the longest cached prefix of its prompt.
fn complete_on_engine(
    state: &mut EngineState,
    request: CompletionRequest,
    cancel: CancelToken,
    emit: &mut dyn FnMut(CompletionEvent),
) -> Result<Completion, ApiError> {
    if cancel.is_cancelled() {
        return Err(cancelled());
    }
    let EngineState {
        model,
        chats,
        adapters,
        ..
    } = state;
    let lm = model.as_mut().ok_or_else(ApiError::no_model)?;
    let adapter = adapters.use_dir(lm, request.adapter.as_deref())?;
    let lm = &*lm;
    let (prompt, format) = prompt_ids(lm, request.prompt)?;
    let context = lm.model.args.max_position_embeddings;
    if prompt.len() >= context {
        return Err(ApiError::new(
            ErrorCode::ServeContextLength,
            format!(
                "the prompt has {} tokens but the model's context holds {context}; send a \
                 shorter conversation",
                prompt.len()
            ),
        ));
    }
    let key = prompt_key(lm, adapter.as_ref());
    let mut cache = chats
        .prefixes
        .lookup(&key, &prompt)
        .unwrap_or_else(|| SequenceCache::new(&lm.model));
    let mut sink = CompletionSink {
        emit,
        cancel,
        logprobs: request.logprobs,
        tools: ToolFilter::new(format),
        tokenizer: &lm.tokenizer,
        shown: String::new(),
    };
    let generation = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &prompt,
        &request.params,
        &mut sink,
    )?;
    let (rest, tool_calls) = sink.tools.finish();
    sink.show(rest);
    chats.prefixes.keep(&key, cache);
    chats.enforce(lm, 0)?;
    let finish = match generation.stop_reason {
        _ if !tool_calls.is_empty() => Finish::ToolCalls,
        Some(StopReason::MaxTokens | StopReason::ContextFull) => Finish::Length,
        Some(StopReason::Cancelled) => Finish::Cancelled,
        _ => Finish::Stop,
    };
    Ok(Completion {
        text: sink.shown,
        tool_calls,
        finish,
        stats: generation.stats,
    })
}

/// The prompt's token ids, and the tool-call format to read the reply with (when the request
/// gave tools and the template has one).
fn prompt_ids(
    lm: &adapt_engine::LoadedModel,
    prompt: PromptInput,
) -> Result<(Vec<u32>, Option<ToolFormat>), ApiError> {
    match prompt {
        PromptInput::Text(text) => {
            if text.is_empty() {
                return Err(bad_field("prompt", "the prompt is empty"));
            }
            Ok((lm.tokenizer.encode(&text, true).map_err(engine)?, None))
        }
        PromptInput::Chat { messages, tools } => {
            let messages = template_messages(&messages)?;
            let tools = template_tools(&tools)?;
            let Some(template) = &lm.chat_template else {
                return Err(bad_field(
                    "messages",
                    "this model has no chat template; use /v1/completions with a prompt",
                ));
            };
            let source = lm.tokenizer.chat_template().unwrap_or("");
            if !tools.is_empty() && !source.contains("tools") {
                return Err(bad_field(
                    "tools",
                    "this model's chat template does not describe tools to the model",
                ));
            }
            let format = (!tools.is_empty())
                .then(|| ToolFormat::of(source))
                .flatten();
            let text = template
                .render_with(&[], true, &template_extra(messages, tools))
                .map_err(engine)?;
            Ok((lm.tokenizer.encode(&text, false).map_err(engine)?, format))
        }
    }
}

fn engine(e: impl Into<adapt_engine::EngineError>) -> ApiError {
    ApiError::from(e.into())
}

pub(crate) fn cancelled() -> ApiError {
    ApiError::new(
        ErrorCode::ServeCancelled,
        "the request was cancelled (its client left)",
    )
}

/// Hands a completion's text (tool calls held back) and log probabilities to the caller.
struct CompletionSink<'a> {
    emit: &'a mut dyn FnMut(CompletionEvent),
    cancel: CancelToken,
    logprobs: Option<usize>,
    tools: ToolFilter,
    tokenizer: &'a Tokenizer,
    shown: String,
}

impl CompletionSink<'_> {
    fn show(&mut self, text: String) {
        if !text.is_empty() {
            self.shown.push_str(&text);
            (self.emit)(CompletionEvent::Text(text));
        }
    }

    fn token_text(&self, token: u32, logprob: f32) -> TokenText {
        let token = self.tokenizer.decode(&[token], false).unwrap_or_default();
        TokenText {
            bytes: token.as_bytes().to_vec(),
            token,
            logprob,
            top: Vec::new(),
        }
    }
}

impl TokenSink for CompletionSink<'_> {
    fn text(&mut self, text: &str) -> bool {
        let shown = self.tools.push(text);
        self.show(shown);
        !self.cancel.is_cancelled()
    }

    fn logprobs(&self) -> Option<usize> {
        self.logprobs
    }

    fn token(&mut self, token: TokenLogprob) {
        let mut text = self.token_text(token.token, token.logprob);
        text.top = token
            .top
            .iter()
            .map(|&(t, lp)| self.token_text(t, lp))
            .collect();
        (self.emit)(CompletionEvent::Logprob(text));
    }
}

/// Seconds since 1970, now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
