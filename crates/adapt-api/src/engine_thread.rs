//! The engine thread: the only thread that touches MLX. It owns the loaded model and the
//! conversations, and serves [`Request`]s in order until every handle is dropped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use adapt_engine::{
    generate, load, prompt_tokens, ChatMessage, ChatOptions, ChatPool, ChatSession, DeviceReport,
    EngineError, GenerateParams, Generation, GenerationStats, LoadOptions, LoadedModel, ModelInfo,
    SequenceCache, TokenSink,
};

use crate::{ApiError, ChatId, GenerationEvent};

type Reply<T> = Sender<Result<T, ApiError>>;

/// A request to the engine thread; each carries the channel its answer goes back on.
pub(crate) enum Request {
    Device {
        reply: Reply<DeviceReport>,
    },
    LoadModel {
        path: PathBuf,
        adapter: Option<PathBuf>,
        reply: Reply<ModelInfo>,
    },
    Generate {
        prompt: String,
        raw: bool,
        params: GenerateParams,
        events: Sender<GenerationEvent>,
        cancel: Arc<AtomicBool>,
        reply: Reply<Generation>,
    },
    NewChat {
        messages: Vec<ChatMessage>,
        options: ChatOptions,
        /// `Some`: talk to this adapter folder (`None` inside: the base model) instead of the
        /// one loaded with the model.
        adapter: Option<Option<PathBuf>>,
        reply: Reply<ChatId>,
    },
    Chat {
        chat: ChatId,
        turn: Turn,
        params: GenerateParams,
        events: Sender<GenerationEvent>,
        cancel: Arc<AtomicBool>,
        reply: Reply<Generation>,
    },
    ForkChat {
        chat: ChatId,
        turns: usize,
        reply: Reply<ChatId>,
    },
    SetSystem {
        chat: ChatId,
        system: Option<String>,
        reply: Reply<()>,
    },
    ChatState {
        chat: ChatId,
        reply: Reply<crate::chats::ChatState>,
    },
    /// The conversations held.
    ChatIds {
        reply: Reply<Vec<ChatId>>,
    },
    /// Forgets a conversation; one kept on disk is saved first (its record is returned).
    CloseChat {
        chat: ChatId,
        reply: Reply<Option<crate::SavedChat>>,
    },
    SaveChat {
        chat: ChatId,
        path: PathBuf,
        reply: Reply<crate::SavedChat>,
    },
    /// Reopens a saved conversation from `path`; when its cache cannot be used, `messages`
    /// (the stored ones) start a conversation that processes them again.
    OpenChat {
        path: PathBuf,
        messages: Option<Vec<ChatMessage>>,
        reply: Reply<(ChatId, crate::SavedChat)>,
    },
    MemoryBudget {
        bytes: Option<usize>,
    },
    Convert {
        work: crate::convert::ConvertWork,
        progress: Sender<String>,
        reply: Reply<adapt_engine::convert::ConvertReport>,
    },
    Train {
        work: Box<crate::train::TrainWork>,
        events: Sender<adapt_engine::train::TrainEvent>,
        cancel: crate::jobs::CancelToken,
        reply: Reply<adapt_engine::train::TrainOutcome>,
    },
    PlanTrain {
        work: Box<crate::train::TrainWork>,
        reply: Reply<adapt_engine::train::TrainPlan>,
    },
    Fuse {
        src: PathBuf,
        adapter: PathBuf,
        out: PathBuf,
        dequantize: bool,
        progress: Sender<String>,
        reply: Reply<adapt_engine::train::fuse::FuseReport>,
    },
    BenchChat {
        history_tokens: usize,
        kv_bits: Option<i32>,
        dir: PathBuf,
        reply: Reply<adapt_engine::chat_bench::ChatBench>,
    },
    Bench {
        prompt_tokens: usize,
        generate_tokens: usize,
        runs: usize,
        reply: Reply<Vec<GenerationStats>>,
    },
}

/// One turn of a conversation.
pub(crate) enum Turn {
    Say(String),
    Regenerate,
    Edit { index: usize, content: String },
}

#[derive(Default)]
struct State {
    model: Option<LoadedModel>,
    chats: ChatPool,
}

fn no_chat() -> ApiError {
    ApiError::new(
        "api.no_chat",
        "that conversation does not exist (it was closed, or the model changed)",
    )
}

fn saved(
    lm: &LoadedModel,
    session: &ChatSession,
    path: &std::path::Path,
    bytes: u64,
) -> crate::SavedChat {
    crate::SavedChat {
        path: path.to_path_buf(),
        messages: session.messages.len(),
        cached_tokens: session.cache.tokens.len(),
        bytes,
        key: session.key(lm),
        note: None,
    }
}

pub(crate) fn run(requests: Receiver<Request>) {
    let mut state = State::default();
    for request in requests {
        // A send fails only when the caller stopped waiting; there is nobody to tell.
        match request {
            Request::Convert {
                work,
                progress,
                reply,
            } => {
                let mut step = |s: &str| {
                    let _ = progress.send(s.to_string());
                };
                let result = work.run(&mut step);
                drop(progress);
                let _ = reply.send(result);
            }
            Request::Train {
                work,
                events,
                cancel,
                reply,
            } => {
                let result = work.run(&events, &cancel);
                drop(events);
                let _ = reply.send(result);
            }
            Request::PlanTrain { work, reply } => {
                let _ = reply.send(work.plan());
            }
            Request::Fuse {
                src,
                adapter,
                out,
                dequantize,
                progress,
                reply,
            } => {
                let mut step = |s: &str| {
                    let _ = progress.send(s.to_string());
                };
                let result = adapt_engine::train::fuse::fuse_folder(
                    &src, &adapter, &out, dequantize, &mut step,
                );
                drop(progress);
                let _ = reply.send(result.map_err(ApiError::from));
            }
            Request::Device { reply } => {
                let _ = reply.send(DeviceReport::current().map_err(ApiError::from));
            }
            Request::LoadModel {
                path,
                adapter,
                reply,
            } => {
                state.model = None;
                state.chats.clear();
                let result = load(&path, &LoadOptions::default()).and_then(|mut lm| {
                    if let Some(dir) = &adapter {
                        lm.attach_adapter(dir)?;
                    }
                    let info = lm.info.clone();
                    state.model = Some(lm);
                    Ok(info)
                });
                let _ = reply.send(result.map_err(ApiError::from));
            }
            Request::Generate {
                prompt,
                raw,
                params,
                events,
                cancel,
                reply,
            } => {
                let result = state.loaded().and_then(|lm| {
                    let ids = if raw {
                        lm.tokenizer
                            .encode(&prompt, true)
                            .map_err(|e| ApiError::from(EngineError::from(e)))?
                    } else {
                        prompt_tokens(lm, &[user(&prompt)])?
                    };
                    let mut cache = SequenceCache::new(&lm.model);
                    let mut sink = EventSink { events, cancel };
                    Ok(generate(
                        &lm.model,
                        &lm.tokenizer,
                        &mut cache,
                        &ids,
                        &params,
                        &mut sink,
                    )?)
                });
                let _ = reply.send(result);
            }
            Request::NewChat {
                messages,
                options,
                adapter,
                reply,
            } => {
                let result = state.loaded().and_then(|lm| {
                    let mut session = ChatSession::with_messages(lm, messages, options)?;
                    if let Some(choice) = adapter {
                        let adapter = choice
                            .map(|dir| -> Result<_, EngineError> {
                                adapt_engine::train::adapters::read_config(&dir)?;
                                let fingerprint = adapt_engine::train::adapters::fingerprint(&dir)?;
                                Ok((dir, fingerprint))
                            })
                            .transpose()?;
                        session.set_adapter(adapter)?;
                    }
                    Ok(session)
                });
                let result = result.map(|session| ChatId(state.chats.insert(session, None)));
                let _ = reply.send(result);
            }
            Request::Chat {
                chat,
                turn,
                params,
                events,
                cancel,
                reply,
            } => {
                let State { model, chats } = &mut state;
                // The conversation's adapter goes on the base weights for its turn.
                let adapter = chats.get(chat.0).map(|s| s.adapter.clone());
                let swapped = match (model.as_mut(), adapter) {
                    (Some(lm), Some(adapter)) => lm.use_adapter(adapter.as_ref()),
                    _ => Ok(()),
                };
                let result = match (model.as_ref(), swapped) {
                    (None, _) => Err(ApiError::no_model()),
                    (Some(_), Err(e)) => Err(e.into()),
                    (Some(lm), Ok(())) => {
                        let mut sink = EventSink { events, cancel };
                        chats
                            .turn(lm, chat.0, |session, prefixes| match turn {
                                Turn::Say(text) => {
                                    session.respond(lm, &text, &params, &mut sink, Some(prefixes))
                                }
                                Turn::Regenerate => session.regenerate(lm, &params, &mut sink),
                                Turn::Edit { index, content } => {
                                    session.edit(lm, index, &content, &params, &mut sink)
                                }
                            })
                            .map(|(generation, _)| generation)
                            .map_err(|e| chat_error(e, chats.get(chat.0).is_none()))
                    }
                };
                let _ = reply.send(result);
            }
            Request::ForkChat { chat, turns, reply } => {
                let State { model, chats } = &mut state;
                let result = match (model.as_ref(), chats.get(chat.0)) {
                    (None, _) => Err(ApiError::no_model()),
                    (_, None) => Err(no_chat()),
                    (Some(lm), Some(session)) => session
                        .fork(lm, turns)
                        .map(|fork| ChatId(chats.insert(fork, None)))
                        .map_err(ApiError::from),
                };
                let _ = reply.send(result);
            }
            Request::SetSystem {
                chat,
                system,
                reply,
            } => {
                let State { model, chats } = &mut state;
                let result = match model.as_ref() {
                    None => Err(ApiError::no_model()),
                    Some(lm) => chats
                        .session(lm, chat.0)
                        .map(|s| s.set_system(system.as_deref()))
                        .map_err(|_| no_chat()),
                };
                let _ = reply.send(result);
            }
            Request::ChatState { chat, reply } => {
                let chats = &state.chats;
                let result = chats
                    .get(chat.0)
                    .map(|s| crate::chats::ChatState {
                        messages: s.messages.clone(),
                        turns: s.turns(),
                        cached_tokens: s.cache.tokens.len(),
                        cache_bytes: s.cache.nbytes() as u64,
                        evicted: chats.is_evicted(chat.0),
                        kv_bits: s.options.kv_bits,
                        left_out_messages: s.left_out,
                        all_caches_bytes: chats.nbytes() as u64,
                        prefixes: chats.prefixes.len(),
                        name: None,
                        disk_bytes: None,
                    })
                    .ok_or_else(no_chat);
                let _ = reply.send(result);
            }
            Request::ChatIds { reply } => {
                let ids = state.chats.ids().into_iter().map(ChatId).collect();
                let _ = reply.send(Ok(ids));
            }
            Request::CloseChat { chat, reply } => {
                let State { model, chats } = &mut state;
                let file = chats.file(chat.0).map(|f| f.to_path_buf());
                let result = match (model.as_ref(), file) {
                    (Some(lm), Some(file)) if !chats.is_evicted(chat.0) => {
                        let session = chats.get(chat.0).ok_or_else(no_chat);
                        session.and_then(|s| {
                            if s.cache.tokens.is_empty() {
                                return Ok(None);
                            }
                            let bytes = s.save(lm, &file)?;
                            Ok(Some(saved(lm, s, &file, bytes)))
                        })
                    }
                    _ => Ok(None),
                };
                chats.remove(chat.0);
                let _ = reply.send(result);
            }
            Request::SaveChat { chat, path, reply } => {
                let State { model, chats } = &mut state;
                let result = match model.as_ref() {
                    None => Err(ApiError::no_model()),
                    Some(lm) => chats
                        .session(lm, chat.0)
                        .map_err(|_| no_chat())
                        .and_then(|s| {
                            // An evicted or unused cache: the messages are kept, no file.
                            if s.cache.tokens.is_empty() {
                                let _ = std::fs::remove_file(&path);
                                return Ok(saved(lm, s, &path, 0));
                            }
                            let bytes = s.save(lm, &path)?;
                            Ok(saved(lm, s, &path, bytes))
                        }),
                };
                if result.is_ok() {
                    chats.set_file(chat.0, path);
                }
                let _ = reply.send(result);
            }
            Request::OpenChat {
                path,
                messages,
                reply,
            } => {
                let State { model, chats } = &mut state;
                let result = match model.as_ref() {
                    None => Err(ApiError::no_model()),
                    Some(lm) => open(lm, &path, messages).map(|(session, bytes, note)| {
                        let mut info = saved(lm, &session, &path, bytes);
                        info.note = note;
                        (ChatId(chats.insert(session, Some(path.clone()))), info)
                    }),
                };
                let _ = reply.send(result);
            }
            Request::MemoryBudget { bytes } => state.chats.set_memory_budget(bytes),
            Request::BenchChat {
                history_tokens,
                kv_bits,
                dir,
                reply,
            } => {
                let result = state.loaded().and_then(|lm| {
                    Ok(adapt_engine::chat_bench::bench_warm_cold(
                        lm,
                        history_tokens,
                        kv_bits,
                        &dir,
                    )?)
                });
                let _ = reply.send(result);
            }
            Request::Bench {
                prompt_tokens,
                generate_tokens,
                runs,
                reply,
            } => {
                let result = state
                    .loaded()
                    .and_then(|lm| bench(lm, prompt_tokens, generate_tokens, runs));
                let _ = reply.send(result);
            }
        }
    }
}

/// A saved conversation with its cache. With the stored `messages` at hand they are the
/// conversation (the cache then serves the prefix they share with it), and a cache that cannot
/// be used (missing, or saved under another key) leaves an empty one and says why.
fn open(
    lm: &LoadedModel,
    path: &std::path::Path,
    messages: Option<Vec<ChatMessage>>,
) -> Result<(ChatSession, u64, Option<String>), ApiError> {
    let opened = ChatSession::open(lm, path);
    match (opened, messages) {
        (Ok(mut session), stored) => {
            if let Some(stored) = stored {
                session.messages = stored;
            }
            let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
            Ok((session, bytes, None))
        }
        (Err(e), None) => Err(e.into()),
        (Err(e), Some(stored)) => {
            let session = ChatSession::with_messages(lm, stored, ChatOptions::default())?;
            let why = if path.is_file() {
                e.to_string()
            } else {
                "its cache was removed to keep within the disk budget".into()
            };
            Ok((
                session,
                0,
                Some(format!("{why}; the history will be processed again")),
            ))
        }
    }
}

/// A turn's error; "no such conversation" when it is gone.
fn chat_error(e: EngineError, gone: bool) -> ApiError {
    if gone {
        no_chat()
    } else {
        e.into()
    }
}

impl State {
    fn loaded(&self) -> Result<&LoadedModel, ApiError> {
        self.model.as_ref().ok_or_else(ApiError::no_model)
    }
}

fn user(content: &str) -> ChatMessage {
    ChatMessage {
        role: "user".into(),
        content: content.into(),
    }
}

/// Prefill of a fixed-length prompt of pseudo-random ordinary tokens, then greedy decoding of
/// a fixed number of tokens (end-of-sequence ignored), from an empty cache each run.
fn bench(
    lm: &LoadedModel,
    prompt_tokens: usize,
    generate_tokens: usize,
    runs: usize,
) -> Result<Vec<GenerationStats>, ApiError> {
    let vocab = lm.model.args.vocab_size as u64;
    // Skip the first ids, where special tokens usually live.
    let (low, span) = (vocab.min(1000), vocab - vocab.min(1000));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let prompt: Vec<u32> = (0..prompt_tokens)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (low + state % span.max(1)) as u32
        })
        .collect();
    let params = GenerateParams {
        max_tokens: generate_tokens,
        ignore_eos: true,
        ..GenerateParams::default()
    };
    (0..runs)
        .map(|_| {
            let mut cache = SequenceCache::new(&lm.model);
            let mut sink = |_: &str| true;
            generate(
                &lm.model,
                &lm.tokenizer,
                &mut cache,
                &prompt,
                &params,
                &mut sink,
            )
            .map(|g| g.stats)
            .map_err(ApiError::from)
        })
        .collect()
}

/// Forwards generated text to the caller and reports its cancel flag.
struct EventSink {
    events: Sender<GenerationEvent>,
    cancel: Arc<AtomicBool>,
}

impl TokenSink for EventSink {
    fn text(&mut self, text: &str) -> bool {
        let _ = self.events.send(GenerationEvent::Text(text.to_string()));
        !self.cancel.load(Ordering::Relaxed)
    }

    fn prefill(&mut self, done: usize, total: usize) {
        let _ = self.events.send(GenerationEvent::Prefill { done, total });
    }
}
