//! Errors as OpenAI's API shapes them — `{"error": {"message", "type", "param", "code"}}`
//! with the matching HTTP status — made from the API's errors and from the server's own
//! refusals (bad JSON, a wrong key, too many requests, too large a body).

use adapt_api::{ApiError, ErrorCode};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct HttpError {
    pub status: StatusCode,
    pub message: String,
    /// OpenAI's `type`: `invalid_request_error`, `authentication_error`, `server_error`, …
    pub kind: &'static str,
    pub param: Option<String>,
    /// OpenAI's `code` (`model_not_found`, `invalid_api_key`, …) or the API's error code.
    pub code: String,
}

impl HttpError {
    /// A refused request: 400, naming `param` when there is one.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> HttpError {
        HttpError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: param.map(str::to_string),
            code: ErrorCode::RequestInvalid.as_str().into(),
        }
    }

    /// A wrong or missing key: 401.
    pub fn unauthorized() -> HttpError {
        HttpError {
            status: StatusCode::UNAUTHORIZED,
            message: "Incorrect or missing API key: send `Authorization: Bearer KEY` with the \
                      key `adapt serve` printed (or the app's Server panel shows)"
                .into(),
            kind: "authentication_error",
            param: None,
            code: "invalid_api_key".into(),
        }
    }

    /// Too many requests queued: 429.
    pub fn busy(limit: usize) -> HttpError {
        HttpError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "the server is busy: {limit} requests are running or waiting (its \
                 --max-concurrency); try again shortly"
            ),
            kind: "server_error",
            param: None,
            code: ErrorCode::ServeBusy.as_str().into(),
        }
    }

    /// A request body over the limit: 413.
    pub fn too_large(limit: usize) -> HttpError {
        HttpError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("the request body is larger than {} MB", limit >> 20),
            kind: "invalid_request_error",
            param: None,
            code: "request_too_large".into(),
        }
    }

    /// No such route: 404.
    pub fn no_route(method: &str, path: &str) -> HttpError {
        HttpError {
            status: StatusCode::NOT_FOUND,
            message: format!("there is no {method} {path}; see GET /openapi.json"),
            kind: "invalid_request_error",
            param: None,
            code: "unknown_url".into(),
        }
    }

    /// A known route asked with another method: 405.
    pub fn wrong_method(method: &str, path: &str) -> HttpError {
        HttpError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("{path} does not take {method}; see GET /openapi.json"),
            kind: "invalid_request_error",
            param: None,
            code: "method_not_allowed".into(),
        }
    }

    /// The body as OpenAI's API writes it.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl From<ApiError> for HttpError {
    fn from(e: ApiError) -> HttpError {
        let (status, kind, code) = match e.code {
            ErrorCode::ServeUnknownModel => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
            ),
            ErrorCode::ServeContextLength => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "context_length_exceeded",
            ),
            ErrorCode::RequestInvalid
            | ErrorCode::TextTemplateRaised
            | ErrorCode::TextTemplateRender
            | ErrorCode::TrainNoAdapter
            | ErrorCode::RunNotFound => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.code.as_str(),
            ),
            ErrorCode::ServeCancelled => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.code.as_str(),
            ),
            ErrorCode::ApiNoModel => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                e.code.as_str(),
            ),
            _ => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.code.as_str(),
            ),
        };
        HttpError {
            status,
            kind,
            param: e.fields.first().map(|f| f.field.clone()),
            code: code.to_string(),
            message: e.message,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Why a server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("the server's runtime failed: {0}")]
    Runtime(String),
}

impl ServerError {
    pub fn code(&self) -> &'static str {
        match self {
            ServerError::Bind { .. } => "serve.bind",
            ServerError::Runtime(_) => "serve.runtime",
        }
    }
}

impl From<ServerError> for ApiError {
    fn from(e: ServerError) -> ApiError {
        let code = ErrorCode::parse(e.code()).unwrap_or(ErrorCode::ApiInternal);
        ApiError::new(code, e.to_string())
    }
}
