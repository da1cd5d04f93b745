//! The routes: the page ([`super::page`]), `POST /api/analyze`, `GET /api/stats`, `GET /metrics`,
//! `GET /healthz`, and the login ([`super::auth`]) when there is a token. Every error is JSON,
//! `{"error": "..."}`, with a status that says whose fault it was: 4xx for the request (401
//! without the token), 503 while loading or when the queue is full, 500 for the server's own.

use super::auth::{self, Token};
use super::Server;
use crate::error::one_line;
use crate::sinks::annotate;
use axum::body::{Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde::Deserialize;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// The routes; with a token, all but `/healthz`, the login form and the page's script and style
/// need it (as a bearer token or the login's cookie).
pub fn router(server: Arc<Server>, token: Option<Arc<Token>>) -> Router {
    let max_upload = server.limits.max_upload;
    let mut app = Router::new()
        .route("/api/analyze", post(analyze))
        .route("/api/stats", get(stats))
        .route("/metrics", get(metrics))
        .merge(super::page::index());
    if let Some(token) = token {
        app = app
            .route_layer(middleware::from_fn_with_state(token.clone(), auth::require))
            .merge(auth::routes(token));
    }
    app.route("/healthz", get(healthz))
        .merge(super::page::assets())
        .layer(DefaultBodyLimit::max(max_upload))
        .with_state(server)
}

/// An error response: the status and one line saying what went wrong.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Serialised straight from the value, not through `serde_json::Value`, which would widen the
/// report's f32 numbers to f64 digits and differ from the line `edge --json` prints.
fn json(value: &impl serde::Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct AnalyzeQuery {
    /// `annotate=1`: answer with the image, faces drawn, as JPEG instead of the JSON report.
    #[serde(default)]
    annotate: Option<String>,
}

/// `POST /api/analyze`: one image, as the raw body or as the file of a multipart form. Answers
/// the JSON line `edge --json` prints for a file (`file` is the upload's name, or `upload`).
async fn analyze(
    State(server): State<Arc<Server>>,
    Query(query): Query<AnalyzeQuery>,
    request: Request,
) -> Response {
    let start = Instant::now();
    server.count(|s| s.requests += 1);
    let annotate = matches!(query.annotate.as_deref(), Some("1" | "true" | "yes"));
    match analyse_upload(&server, request, annotate, start).await {
        Ok(response) => response,
        Err(e) => {
            if e.status.is_client_error() {
                server.count(|s| s.bad_input += 1);
            } else if e.status == StatusCode::SERVICE_UNAVAILABLE {
                server.count(|s| s.busy += 1);
            }
            e.into_response()
        }
    }
}

async fn analyse_upload(
    server: &Arc<Server>,
    request: Request,
    annotate: bool,
    start: Instant,
) -> Result<Response, ApiError> {
    let refused = if server.pipeline().is_none() { Some("the models are loading") } else { None };
    // Admission before the body is read: a full queue costs a refused client no memory.
    let admitted = server.admitted.try_acquire();
    if let Some(why) = refused.or(admitted.is_err().then_some("busy: the queue is full, try again"))
    {
        drain(request, &server.limits).await;
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why));
    }
    if let Some(length) = content_length(&request).filter(|&n| n > server.limits.max_upload) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the upload is {length} bytes, above the length limit of {} bytes",
                server.limits.max_upload
            ),
        ));
    }
    let timeout = server.limits.client_timeout;
    let (name, bytes) = tokio::time::timeout(timeout, upload(request)).await.map_err(|_| {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the upload did not arrive within {} s", timeout.as_secs()),
        )
    })??;
    if bytes.is_empty() {
        return Err(ApiError::bad(format!("{name}: the file is empty")));
    }
    let _worker = server.running.acquire().await.map_err(|_| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
    })?;
    let worker = server.clone();
    let analysed = tokio::task::spawn_blocking(move || analyse(&worker, name, &bytes, annotate))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let (report, annotated) = analysed;
    server.count(|s| s.record(&report, start.elapsed().as_secs_f64() * 1e3));
    Ok(match annotated {
        Some(jpeg) => ([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response(),
        None => json(&report),
    })
}

/// Decodes and analyses on a blocking thread; with `annotate`, also draws the faces and encodes
/// the JPEG. A file that does not decode is the client's error (422), anything after it ours.
fn analyse(
    server: &Server,
    name: String,
    bytes: &[u8],
    annotate: bool,
) -> Result<(crate::ImageReport, Option<Vec<u8>>), ApiError> {
    let pipeline = server
        .pipeline()
        .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the models are loading"))?;
    let t = Instant::now();
    let mut img = crate::input::decode::from_memory(bytes).map_err(|e| {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{name}: {}", one_line(&e)))
    })?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let internal = |e: anyhow::Error| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{name}: {}", one_line(&e)))
    };
    let report = pipeline.report(name.clone(), &img, decode_ms).map_err(internal)?;
    if !annotate {
        return Ok((report, None));
    }
    annotate::draw(&mut img, &report.faces);
    let mut jpeg = vec![];
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&img)
        .map_err(|e| internal(e.into()))?;
    Ok((report, Some(jpeg)))
}

fn content_length(request: &Request) -> Option<usize> {
    request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Reads and drops a request's body (up to the upload limit, within the client timeout) before
/// an early answer: a socket closed with unread data is reset, and the client may lose the answer.
async fn drain(request: Request, limits: &super::Limits) {
    let mut body = request.into_body();
    let mut left = limits.max_upload;
    let _ = tokio::time::timeout(limits.client_timeout, async {
        while let Some(Ok(frame)) = poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
            let n = frame.data_ref().map_or(0, |d| d.len());
            let Some(rest) = left.checked_sub(n) else { break };
            left = rest;
        }
    })
    .await;
}

/// The uploaded image and its name: the first file of a multipart form (a second is refused),
/// or the whole body.
async fn upload(request: Request) -> Result<(String, Bytes), ApiError> {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        let bytes = Bytes::from_request(request, &())
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        return Ok(("upload".to_string(), bytes));
    }
    let mut form = Multipart::from_request(request, &())
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let (mut found, mut files) = (None, 0);
    // Every field is read, so the answer to a bad form goes out after the whole body.
    while let Some(field) =
        form.next_field().await.map_err(|e| ApiError::new(e.status(), e.body_text()))?
    {
        let name = field.file_name().map(str::to_string);
        let bytes = field.bytes().await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        if let Some(name) = name {
            files += 1;
            found = Some((if name.is_empty() { "upload".to_string() } else { name }, bytes));
        }
    }
    match (found, files) {
        (Some(found), 1) => Ok(found),
        (None, _) => Err(ApiError::bad("the form has no file: send the image as a file field")),
        (Some(_), n) => {
            Err(ApiError::bad(format!("the form has {n} files: send one image per request")))
        }
    }
}

/// `GET /api/stats`: the counters and the mean time per stage.
async fn stats(State(server): State<Arc<Server>>) -> Response {
    json(&server.count(|s| s.json()))
}

/// `GET /metrics`: the counters and latency histograms for Prometheus.
async fn metrics(State(server): State<Arc<Server>>) -> Response {
    let text = server.count(|s| s.prometheus());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /healthz`: 200 once the models have loaded, 503 before.
async fn healthz(State(server): State<Arc<Server>>) -> Response {
    match server.pipeline() {
        Some(p) => json(&serde_json::json!({
            "status": "ok",
            "classifier": p.classifier.is_some(),
            "threshold": p.threshold(),
        })),
        None => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the models are loading").into_response()
        }
    }
}
