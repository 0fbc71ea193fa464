//! The routes ([`ROUTES`], described in `openapi.json`), the key check in front of `/v1/`,
//! and the small handlers: health, the OpenAPI description, the model list.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{header, Method, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::app::App;
use crate::completions;
use crate::errors::HttpError;

/// Every route, as `openapi.json` lists them (a test holds the two together).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
];

/// The OpenAPI description of this server.
pub const OPENAPI: &str = include_str!("../openapi.json");

pub(crate) fn router(app: Arc<App>) -> Router {
    let v1 = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/models/{model}", get(model))
        .route("/v1/chat/completions", post(completions::chat))
        .route("/v1/completions", post(completions::text))
        .route_layer(middleware::from_fn_with_state(app.clone(), authorize));
    Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .merge(v1)
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .with_state(app)
}

/// Refuses a request without the server's key, when it has one.
async fn authorize(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(key) = &app.key {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if !given.is_some_and(|g| same(g.as_bytes(), key.as_bytes())) {
            return HttpError::unauthorized().into_response();
        }
    }
    next.run(request).await
}

/// Compares two keys in time that depends on their length only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn no_route(method: Method, uri: Uri) -> Response {
    HttpError::no_route(method.as_str(), uri.path()).into_response()
}

async fn wrong_method(method: Method, uri: Uri) -> Response {
    HttpError::wrong_method(method.as_str(), uri.path()).into_response()
}

async fn health(State(app): State<Arc<App>>) -> Json<Value> {
    Json(json!({"status": "ok", "model": app.default_model}))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

fn model_object(m: &adapt_api::ServedModel) -> Value {
    json!({"id": m.id, "object": "model", "created": m.created, "owned_by": "adapt"})
}

async fn served(app: &Arc<App>) -> Result<Vec<adapt_api::ServedModel>, HttpError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || app.adapt.served_models(&app.served))
        .await
        .map_err(|e| HttpError::invalid(None, e.to_string()))?
        .map_err(HttpError::from)
}

async fn models(State(app): State<Arc<App>>) -> Result<Json<Value>, HttpError> {
    let data: Vec<Value> = served(&app).await?.iter().map(model_object).collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

async fn model(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, HttpError> {
    let models = served(&app).await?;
    match models.iter().find(|m| m.id == name) {
        Some(m) => Ok(Json(model_object(m))),
        None => Err(HttpError::from(adapt_api::ApiError::new(
            adapt_api::ErrorCode::ServeUnknownModel,
            format!("the model '{name}' does not exist; GET /v1/models lists them"),
        ))),
    }
}
