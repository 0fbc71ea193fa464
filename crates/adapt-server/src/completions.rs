//! `POST /v1/chat/completions` and `POST /v1/completions`: the body read (within its size
//! limit) and checked, a place in the queue taken (or the request refused as busy), the model
//! name resolved to an adapter, then the API's completion run on a blocking thread — answered
//! whole, or streamed as server-sent events from its first token on. A client that leaves
//! (its connection closed, its stream dropped) cancels its request; every request that
//! reached the engine is logged with its token counts and timings.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use adapt_api::{
    ApiError, CancelToken, Completion, CompletionEvent, CompletionRequest, ServedRequest, TokenText,
};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::errors::HttpError;
use crate::ids::{next_id, now_ms};
use crate::replies::{event, Kind, Reply, DONE};
use crate::wire::{self, ChatFields, Common, CompletionFields};

pub async fn chat(State(app): State<Arc<App>>, body: Body) -> Response {
    handle(app, Kind::Chat, body).await
}

pub async fn text(State(app): State<Arc<App>>, body: Body) -> Response {
    handle(app, Kind::Text, body).await
}

/// A checked request with its place in the queue.
struct Job {
    reply: Reply,
    request: CompletionRequest,
    stream: bool,
    include_usage: bool,
    permit: OwnedSemaphorePermit,
    log: ServedRequest,
    arrived: Instant,
}

async fn handle(app: Arc<App>, kind: Kind, body: Body) -> Response {
    let arrived = Instant::now();
    let endpoint = match kind {
        Kind::Chat => "POST /v1/chat/completions",
        Kind::Text => "POST /v1/completions",
    };
    let log = ServedRequest {
        at_ms: now_ms(),
        endpoint: endpoint.into(),
        ..ServedRequest::default()
    };
    match prepare(&app, kind, body, log.clone(), arrived).await {
        Ok(job) if job.stream => stream(app, job).await,
        Ok(job) => whole(app, job).await,
        Err(e) => {
            app.log(ServedRequest {
                status: e.status.as_u16(),
                error: Some(e.message.clone()),
                seconds: arrived.elapsed().as_secs_f64(),
                ..log
            });
            e.into_response()
        }
    }
}

async fn prepare(
    app: &Arc<App>,
    kind: Kind,
    body: Body,
    mut log: ServedRequest,
    arrived: Instant,
) -> Result<Job, HttpError> {
    // A body that says it is too large is refused before any of it is read.
    if axum::body::HttpBody::size_hint(&body).lower() > app.body_limit as u64 {
        return Err(HttpError::too_large(app.body_limit));
    }
    let bytes = axum::body::to_bytes(body, app.body_limit)
        .await
        .map_err(|e| read_error(e, app.body_limit))?;
    let (common, value): (Common, _) = wire::parse(&bytes)?;
    log.model = common.model.clone().unwrap_or_default();
    log.stream = common.stream();
    let params = common.params(app.max_tokens)?;
    let (prompt, logprobs) = match kind {
        Kind::Chat => {
            let f: ChatFields = wire::fields(&value)?;
            (f.prompt()?, f.logprobs()?)
        }
        Kind::Text => {
            let f: CompletionFields = wire::fields(&value)?;
            (f.prompt()?, f.logprobs()?)
        }
    };
    let permit = app
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| HttpError::busy(app.max_concurrency))?;
    let adapter = {
        let (app, model) = (app.clone(), common.model.clone());
        blocking(move || app.adapt.served_adapter(&app.served, model.as_deref())).await?
    };
    let model = match &common.model {
        Some(m) if !m.is_empty() => m.clone(),
        _ => app.default_model.clone(),
    };
    let prefix = match kind {
        Kind::Chat => "chatcmpl",
        Kind::Text => "cmpl",
    };
    Ok(Job {
        reply: Reply {
            kind,
            id: format!("{prefix}-{}", next_id()),
            created: now_ms() / 1000,
            model,
        },
        request: CompletionRequest {
            adapter,
            prompt,
            params,
            logprobs,
        },
        stream: common.stream(),
        include_usage: common.include_usage(),
        permit,
        log,
        arrived,
    })
}

fn read_error(e: axum::Error, limit: usize) -> HttpError {
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if s.to_string().contains("length limit") {
            return HttpError::too_large(limit);
        }
        source = s.source();
    }
    HttpError::invalid(None, format!("cannot read the request body: {e}"))
}

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, HttpError> {
    finish(tokio::task::spawn_blocking(work)).await
}

/// Cancels its request when dropped (the client left, or the request ended).
struct CancelGuard {
    app: Arc<App>,
    id: u64,
    token: CancelToken,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.token.cancel();
        self.app.forget(self.id);
    }
}

/// A running request: its events, its answer, and what cancels it.
struct Running {
    events: UnboundedReceiver<CompletionEvent>,
    answer: JoinHandle<Result<Completion, ApiError>>,
    guard: CancelGuard,
}

/// Queues the job's request on the engine, logging it when it ends.
fn run(app: &Arc<App>, job: Job) -> (Running, Reply, bool) {
    let Job {
        reply,
        request,
        include_usage,
        permit,
        mut log,
        arrived,
        ..
    } = job;
    let (id, token) = app.register();
    let (tx, events) = unbounded_channel();
    let (adapt, cancel, logger) = (app.adapt.clone(), token.clone(), app.clone());
    let answer = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut first_text = None;
        let result = adapt.complete(request, cancel.clone(), |event| {
            if matches!(event, CompletionEvent::Text(_)) {
                first_text.get_or_insert_with(Instant::now);
            }
            if tx.send(event).is_err() {
                cancel.cancel();
            }
        });
        log.seconds = arrived.elapsed().as_secs_f64();
        match &result {
            Ok(c) => {
                log.status = if cancel.is_cancelled() { 499 } else { 200 };
                log.prompt_tokens = c.stats.prompt_tokens;
                log.cached_tokens = c.stats.reused_tokens;
                log.completion_tokens = c.stats.generated_tokens;
                log.tokens_per_second = c.stats.decode_tokens_per_second;
                log.time_to_first_token = first_text.map_or(log.seconds, |t: Instant| {
                    t.duration_since(arrived).as_secs_f64()
                });
            }
            Err(e) => {
                log.status = HttpError::from(e.clone()).status.as_u16();
                log.error = Some(e.message.clone());
            }
        }
        logger.log(log);
        result
    });
    let guard = CancelGuard {
        app: app.clone(),
        id,
        token,
    };
    (
        Running {
            events,
            answer,
            guard,
        },
        reply,
        include_usage,
    )
}

/// The answer of blocking work, a failed thread included.
async fn finish<T>(answer: JoinHandle<Result<T, ApiError>>) -> Result<T, HttpError> {
    answer
        .await
        .map_err(|e| {
            HttpError::from(ApiError::new(
                adapt_api::ErrorCode::ServeRuntime,
                e.to_string(),
            ))
        })?
        .map_err(HttpError::from)
}

/// Answers with the whole completion once it is done.
async fn whole(app: Arc<App>, job: Job) -> Response {
    let want_logprobs = job.request.logprobs.is_some();
    let (mut running, reply, _) = run(&app, job);
    let mut logprobs = Vec::new();
    while let Some(event) = running.events.recv().await {
        if let CompletionEvent::Logprob(t) = event {
            logprobs.push(t);
        }
    }
    let result = finish(running.answer).await;
    drop(running.guard);
    match result {
        Ok(c) => {
            axum::Json(reply.whole(&c, want_logprobs.then_some(&logprobs[..]))).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// What a stream still has to send.
struct Streaming {
    events: UnboundedReceiver<CompletionEvent>,
    answer: Option<JoinHandle<Result<Completion, ApiError>>>,
    /// The answer, when it came before the stream started.
    result: Option<Result<Completion, HttpError>>,
    _guard: CancelGuard,
    reply: Reply,
    include_usage: bool,
    want_logprobs: bool,
    /// Log probabilities of tokens whose text has not been sent.
    pending: Vec<TokenText>,
    /// The first event, read before the response started.
    first: Option<CompletionEvent>,
    opened: bool,
    done: bool,
}

/// Streams the completion as server-sent events once its first text comes; an error before
/// that is an ordinary error response.
async fn stream(app: Arc<App>, job: Job) -> Response {
    let want_logprobs = job.request.logprobs.is_some();
    let (mut running, reply, include_usage) = run(&app, job);
    let mut pending = Vec::new();
    let first = loop {
        match running.events.recv().await {
            Some(CompletionEvent::Logprob(t)) => pending.push(t),
            other => break other,
        }
    };
    let (answer, result) = match first {
        Some(_) => (Some(running.answer), None),
        None => match finish(running.answer).await {
            Err(e) => return e.into_response(),
            Ok(c) => (None, Some(Ok(c))),
        },
    };
    let state = Streaming {
        events: running.events,
        answer,
        result,
        _guard: running.guard,
        reply,
        include_usage,
        want_logprobs,
        pending,
        first,
        opened: false,
        done: false,
    };
    let body = Body::from_stream(futures_util::stream::unfold(state, next_event));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The stream's next bytes: the opening chunk, a text chunk, or the closing chunks.
async fn next_event(mut s: Streaming) -> Option<(Result<Bytes, Infallible>, Streaming)> {
    if s.done {
        return None;
    }
    if !s.opened {
        s.opened = true;
        if s.reply.kind == Kind::Chat {
            let chunk = s.reply.text_chunk("", None, true);
            return Some((Ok(Bytes::from(event(&chunk))), s));
        }
    }
    loop {
        let next = match s.first.take() {
            Some(e) => Some(e),
            None if s.result.is_some() => None,
            None => s.events.recv().await,
        };
        match next {
            Some(CompletionEvent::Text(text)) => {
                let logprobs = std::mem::take(&mut s.pending);
                let logprobs = s.want_logprobs.then_some(&logprobs[..]);
                let chunk = s.reply.text_chunk(&text, logprobs, false);
                return Some((Ok(Bytes::from(event(&chunk))), s));
            }
            Some(CompletionEvent::Logprob(t)) => s.pending.push(t),
            None => break,
        }
    }
    s.done = true;
    let result = match (s.result.take(), s.answer.take()) {
        (Some(r), _) => r,
        (None, Some(answer)) => finish(answer).await,
        (None, None) => return None,
    };
    let mut out = String::new();
    match result {
        Ok(c) => {
            for chunk in s.reply.final_chunks(&c, s.include_usage) {
                out.push_str(&event(&chunk));
            }
        }
        Err(e) => out.push_str(&event(&e.body())),
    }
    out.push_str(DONE);
    Some((Ok(Bytes::from(out)), s))
}
