//! The upload page (`GET /`) and the login form (`GET /login`, with `--token-file`): files
//! embedded in the binary, so they work on a board with no network, served with headers that let
//! them load nothing from elsewhere and run no inline script.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");
const LOGIN: &str = include_str!("page/login.html");

/// Scripts, styles and connections from this server only; images also from the page's own
/// blobs; no frames or plugins, and no form but the login form, posted here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";

/// `GET /`: the upload page (behind the token, when there is one).
pub fn index<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(|| async { file(HTML, INDEX) }))
}

/// The script and style: the same for everyone, so served without a token (the login form
/// uses the style).
pub fn assets<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/page.js", get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/page.css", get(|| async { file("text/css; charset=utf-8", STYLE) }))
}

/// The login form, with a line saying why the last attempt failed, if it did.
pub fn login(status: StatusCode, failure: Option<&str>) -> Response {
    let page = match failure {
        Some(why) => LOGIN.replace("<!--message-->", &format!("<p class=\"error\">{why}</p>")),
        None => LOGIN.to_string(),
    };
    (status, file(HTML, page)).into_response()
}

fn file(content_type: &'static str, body: impl Into<Body>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ];
    (headers, body.into()).into_response()
}
