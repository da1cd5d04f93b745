//! Access with a token, required to serve anything but loopback (`--token-file`): programs send
//! `Authorization: Bearer <token>`; people log in once on `/login` and the page's requests carry
//! a session cookie. The cookie holds a hash of the token, not the token, and is `HttpOnly` and
//! `SameSite=Strict`, so no other site can make a browser send it (no cross-site uploads).

use anyhow::{ensure, Context, Result};
use axum::extract::{Form, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The cookie that carries a logged-in page's session.
const COOKIE: &str = "edge_session";
/// A token shorter than this could be guessed; `openssl rand -hex 16` gives 32 characters.
pub const MIN_TOKEN_LEN: usize = 16;

/// The token, and the session value a login sets.
pub struct Token {
    bearer: String,
    session: String,
}

impl Token {
    /// The token in `path`: its first line, without surrounding white space.
    pub fn read(path: &Path) -> Result<Token> {
        let name = path.display();
        let text = std::fs::read_to_string(path).with_context(|| format!("--token-file {name}"))?;
        let bearer = text.lines().next().unwrap_or_default().trim().to_string();
        ensure!(
            bearer.len() >= MIN_TOKEN_LEN,
            "--token-file {name}: the token must be at least {MIN_TOKEN_LEN} characters \
             (e.g. `openssl rand -hex 16`)"
        );
        ensure!(
            bearer.bytes().all(|b| b.is_ascii_graphic()),
            "--token-file {name}: the token must be printable ASCII without spaces"
        );
        Ok(Token::new(bearer))
    }

    pub fn new(bearer: String) -> Token {
        let digest = Sha256::digest(format!("deepfake-edge session\0{bearer}"));
        let session = digest.iter().map(|b| format!("{b:02x}")).collect();
        Token { bearer, session }
    }

    /// The request carries the token or the session cookie.
    fn allows(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t.trim(), &self.bearer));
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .any(|(k, v)| k == COOKIE && same(v, &self.session));
        bearer || cookie
    }

    /// The `Set-Cookie` value of a successful login (30 days).
    pub fn login_cookie(&self) -> String {
        format!("{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000", self.session)
    }

    /// Whether `candidate` is the token.
    pub fn is(&self, candidate: &str) -> bool {
        same(candidate.trim(), &self.bearer)
    }
}

/// Equality whose time does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Lets a request through with the token or the session cookie. Without them, the page is
/// redirected to the login form and anything else gets 401.
pub async fn require(State(token): State<Arc<Token>>, request: Request, next: Next) -> Response {
    if token.allows(request.headers()) {
        return next.run(request).await;
    }
    if request.uri().path() == "/" {
        return Redirect::to("/login").into_response();
    }
    let body = serde_json::json!({ "error": "a token is needed: Authorization: Bearer <token>" });
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer"), (header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /login`, the form, and `POST /login`, which sets the session cookie for the right token.
pub fn routes<S: Clone + Send + Sync + 'static>(token: Arc<Token>) -> Router<S> {
    Router::new()
        .route("/login", get(|| async { super::page::login(StatusCode::OK, None) }).post(login))
        .with_state(token)
}

#[derive(Deserialize)]
struct Login {
    token: String,
}

/// A wrong token is answered after a second, so guesses from one client come slowly; the
/// token's length (at least [`MIN_TOKEN_LEN`] characters) is what makes guessing hopeless.
async fn login(State(token): State<Arc<Token>>, Form(form): Form<Login>) -> Response {
    if token.is(&form.token) {
        let cookie = [(header::SET_COOKIE, token.login_cookie())];
        return (cookie, Redirect::to("/")).into_response();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    super::page::login(StatusCode::UNAUTHORIZED, Some("That is not this board's token."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).expect("a header value"));
        h
    }

    #[test]
    fn bearer_and_cookie_are_accepted_and_nothing_else() {
        let token = Token::new("0123456789abcdef0123".to_string());
        assert!(token.allows(&headers(header::AUTHORIZATION, "Bearer 0123456789abcdef0123")));
        assert!(!token.allows(&headers(header::AUTHORIZATION, "Bearer 0123456789abcdef0124")));
        assert!(!token.allows(&headers(header::AUTHORIZATION, "Basic 0123456789abcdef0123")));
        let cookie = token.login_cookie();
        let value = cookie.split(';').next().expect("name=value");
        assert!(token.allows(&headers(header::COOKIE, &format!("theme=dark; {value}"))));
        assert!(!token.allows(&headers(header::COOKIE, "edge_session=0123456789abcdef0123")));
        assert!(!value.contains("0123456789abcdef0123"), "the cookie holds a hash");
        assert!(!token.allows(&HeaderMap::new()));
    }
}
