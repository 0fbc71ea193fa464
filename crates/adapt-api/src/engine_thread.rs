//! The engine thread: the only thread that touches MLX. It owns the loaded model and the
//! conversations, and serves [`Request`]s in order until every handle is dropped.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use adapt_engine::{
    generate, load, prompt_tokens, ChatMessage, ChatSession, DeviceReport, EngineError,
    GenerateParams, Generation, GenerationStats, LoadOptions, LoadedModel, ModelInfo,
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
        system: Option<String>,
        reply: Reply<ChatId>,
    },
    Chat {
        chat: ChatId,
        message: String,
        params: GenerateParams,
        events: Sender<GenerationEvent>,
        cancel: Arc<AtomicBool>,
        reply: Reply<Generation>,
    },
    CloseChat {
        chat: ChatId,
        reply: Reply<()>,
    },
    SaveChat {
        chat: ChatId,
        path: PathBuf,
        reply: Reply<crate::SavedChat>,
    },
    OpenChat {
        path: PathBuf,
        reply: Reply<(ChatId, crate::SavedChat)>,
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

#[derive(Default)]
struct State {
    model: Option<LoadedModel>,
    chats: HashMap<ChatId, ChatSession>,
    next_chat: u64,
}

fn no_chat() -> ApiError {
    ApiError::new(
        "api.no_chat",
        "that conversation does not exist (it was closed, or the model changed)",
    )
}

fn saved(session: &ChatSession, path: &std::path::Path, bytes: u64) -> crate::SavedChat {
    crate::SavedChat {
        path: path.to_path_buf(),
        messages: session.messages.len(),
        cached_tokens: session.cache.tokens.len(),
        bytes,
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
            Request::NewChat { system, reply } => {
                let result = state
                    .loaded()
                    .map(|lm| ChatSession::new(lm, system.as_deref()));
                let result = result.map(|session| {
                    state.next_chat += 1;
                    let id = ChatId(state.next_chat);
                    state.chats.insert(id, session);
                    id
                });
                let _ = reply.send(result);
            }
            Request::Chat {
                chat,
                message,
                params,
                events,
                cancel,
                reply,
            } => {
                let State { model, chats, .. } = &mut state;
                let result = match (model.as_ref(), chats.get_mut(&chat)) {
                    (None, _) => Err(ApiError::no_model()),
                    (Some(_), None) => Err(no_chat()),
                    (Some(lm), Some(session)) => {
                        let mut sink = EventSink { events, cancel };
                        session
                            .respond(lm, &message, &params, &mut sink)
                            .map_err(ApiError::from)
                    }
                };
                let _ = reply.send(result);
            }
            Request::CloseChat { chat, reply } => {
                state.chats.remove(&chat);
                let _ = reply.send(Ok(()));
            }
            Request::SaveChat { chat, path, reply } => {
                let result = match (state.model.as_ref(), state.chats.get(&chat)) {
                    (Some(lm), Some(session)) => session
                        .save(lm, &path)
                        .map(|bytes| saved(session, &path, bytes))
                        .map_err(ApiError::from),
                    (None, _) => Err(ApiError::no_model()),
                    (_, None) => Err(no_chat()),
                };
                let _ = reply.send(result);
            }
            Request::OpenChat { path, reply } => {
                let opened = state
                    .loaded()
                    .and_then(|lm| Ok(ChatSession::open(lm, &path)?));
                let result = opened.map(|session| {
                    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
                    let info = saved(&session, &path, bytes);
                    state.next_chat += 1;
                    let id = ChatId(state.next_chat);
                    state.chats.insert(id, session);
                    (id, info)
                });
                let _ = reply.send(result);
            }
            Request::BenchChat {
                history_tokens,
                dir,
                reply,
            } => {
                let result = state.loaded().and_then(|lm| {
                    Ok(adapt_engine::chat_bench::bench_warm_cold(
                        lm,
                        history_tokens,
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
