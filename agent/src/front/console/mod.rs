//! The unit's web console, served by its own agent (`[console] listen`).
//!
//! ```text
//! browser ──HTTP──▶ axum router ──▶ handlers ──▶ the agent's store, folders,
//!                     │                          clerk acts (the same paths
//!                     │                          as the command line)
//!                     └─ every response: CSP (no script), nosniff, no framing
//! ```
//!
//! - [`accounts`] — users (Argon2id) and bearer tokens, in
//!   `state/accounts.json`, managed by `gongwen-agent user …` / `token …`.
//! - [`session`] — sessions and the failed-login limit (pure).
//! - [`pages`] — the HTML, built by maud (escaped by construction).
//! - `answers` (回复, 转发, 汇总), `problems` (问题: 重新发送, 删除), `print`
//!   (签收单, 退文单, 公文处理笺), `supervision` (督查, 督办单) — the
//!   handlers of those pages; the rest are here.
//!
//! Every page but `/login` and the stylesheet needs a session (a cookie that
//! is `HttpOnly` and `SameSite=Strict`); every form that changes anything
//! carries the session's CSRF token in a field named `csrf`, and a POST
//! without it is refused (403) before anything changes. Scripts use
//! `/api/v1/` with a bearer token. Received files are only ever served as
//! downloads (`Content-Disposition: attachment`), never rendered by the
//! browser: what it shows of a PDF, an OFD or an image is the PNG the
//! agent drew of it in a child process under limits.

mod answers;
pub mod logins;
pub mod pages;
mod print;
mod problems;
pub mod serve;
pub mod session;
mod supervision;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::extract::{Form, Path, Query, State};
use axum::http::request::Parts as RequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gongwen_common::DocId;
use gongwen_common::envelope::SealedHeader;
use gongwen_common::receipt::ReceiptKind;
use serde::Deserialize;
use tracing::{info, warn};

use crate::error::AgentError;
use crate::parts::Parts;
use crate::unit::accounts::{self, User};
use crate::unit::store::{ReceivedFilter, ReceivedRecord, ReceivedState};
use logins::Logins;
use pages::{FileLink, Frame, InboxQueryView};
use session::same_secret;

/// Rows on one page of a list.
pub const PAGE_SIZE: usize = 50;

const SESSION_COOKIE: &str = "gongwen_session";
const LOGIN_COOKIE: &str = "gongwen_login";

/// Sent with every response: no script at all, nothing from elsewhere, no
/// framing, no guessing of types.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("style.css");

/// What the console says about this unit beyond its store.
#[derive(Debug, Clone)]
pub struct UnitFacts {
    /// 哈尔滨市人民政府: what every page and printed slip calls this unit
    /// (its id when the certificate names none).
    label: String,
    /// harbin-gov, for the status page.
    id: String,
    /// When this unit's certificate expires.
    cert_not_after: time::OffsetDateTime,
    /// Its role: supervisor units also get `/supervision`.
    role: gongwen_common::Role,
    /// The link to the hub.
    link: tokio::sync::watch::Receiver<crate::link::state::LinkState>,
}

impl UnitFacts {
    /// The unit as its certificate names it, and the link to watch.
    pub fn new(
        cert: &gongwen_common::pki::CertIdentity,
        link: tokio::sync::watch::Receiver<crate::link::state::LinkState>,
    ) -> UnitFacts {
        let label = match &cert.name {
            Some(name) => name.clone(),
            None => cert.id.to_string(),
        };
        UnitFacts {
            label,
            id: cert.id.to_string(),
            cert_not_after: cert.not_after,
            role: cert.role,
            link,
        }
    }
}

/// A console bound to its address, ready to serve.
pub struct Console {
    listener: std::net::TcpListener,
    /// HTTPS, when `[console]` names a certificate and key.
    tls: Option<tokio_rustls::TlsAcceptor>,
    web: Arc<Web>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("https", &self.tls.is_some())
            .finish()
    }
}

/// The console's HTTPS configuration from the files `[console]` names.
fn tls_acceptor(
    config: &std::path::Path,
    tls: &gongwen_common::config::ConsoleTls,
) -> Result<tokio_rustls::TlsAcceptor, AgentError> {
    let invalid = |key: &str, problem: String| {
        AgentError::Config(gongwen_common::config::ConfigError::Invalid {
            path: config.to_owned(),
            key: key.to_owned(),
            problem,
        })
    };
    let chain = gongwen_common::pki::load_certs(&tls.cert)
        .map_err(|e| invalid("console.tls_cert", e.to_string()))?;
    let key = gongwen_common::pki::load_private_key(&tls.key)
        .map_err(|e| invalid("console.tls_key", e.to_string()))?;
    let mut server = rustls::ServerConfig::builder_with_provider(gongwen_common::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| invalid("console.tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            invalid(
                "console.tls_key",
                format!(
                    "{} does not go with {} ({e})",
                    tls.key.display(),
                    tls.cert.display()
                ),
            )
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// What the handlers share: the agent, the accounts as last read, and the
/// sessions and failed logins of this run.
struct Web {
    /// The agent's owners: the console is a front door to all of them.
    parts: Parts,
    /// Accounts, sessions and the failed-login guard.
    logins: Logins,
    /// This unit as its pages name it.
    unit: String,
    facts: UnitFacts,
    /// Served over HTTPS: cookies are `Secure`.
    secure: bool,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("unit", &self.unit).finish()
    }
}

/// Random bytes as hex (session cookies, CSRF tokens).
fn random_hex(bytes: usize) -> Option<String> {
    let mut b = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b).ok()?;
    Some(gongwen_common::pki::serial_hex(&b))
}

impl Console {
    /// Bind the console's socket (before the agent runs, so a taken port
    /// is an error at start).
    pub fn bind(listen: SocketAddr, parts: Parts, facts: UnitFacts) -> Result<Console, AgentError> {
        let listener =
            std::net::TcpListener::bind(listen).map_err(|source| AgentError::Console {
                addr: listen,
                source,
            })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| AgentError::Console {
                addr: listen,
                source,
            })?;
        let me = parts.identity();
        let tls = match me.config().console.as_ref().and_then(|c| c.tls.clone()) {
            Some(t) => Some(tls_acceptor(&me.config().path, &t)?),
            None => None,
        };
        let accounts_path = accounts::path_in(&me.folders().state);
        Ok(Console {
            listener,
            web: Arc::new(Web {
                secure: tls.is_some(),
                parts,
                logins: Logins::new(accounts_path),
                unit: facts.label.clone(),
                facts,
            }),
            tls,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serve until `shutdown` completes.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) {
        let addr = self.local_addr();
        let listener = match tokio::net::TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                warn!("the console cannot listen: {e}");
                return;
            }
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let limits = serve::Limits::for_this_process();
        if let Some(addr) = addr {
            info!(
                "console on {scheme}://{addr}/ (at most {} connections, {} per client)",
                limits.max_connections, limits.per_address
            );
            if self.tls.is_none() && !addr.ip().is_loopback() {
                warn!(
                    "security: the console on {addr} is plain HTTP on the network: passwords and \
                     documents cross the LAN unencrypted. Give [console] tls_cert and tls_key, or \
                     listen on 127.0.0.1"
                );
            }
        }
        serve::serve(listener, self.tls, router(self.web), limits, shutdown).await;
    }
}

/// Largest body of a request that is not an upload (forms, JSON): a form
/// is a few fields; more is not a clerk's.
const MAX_FORM_BYTES: usize = 64 * 1024;
/// Largest login form.
const MAX_LOGIN_BYTES: usize = 8 * 1024;
/// How long a request that is not an upload may take, its body included.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long an upload may go without a byte arriving.
const UPLOAD_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

fn router(web: Arc<Web>) -> Router {
    // Uploads stream to disk under their own limits (see read_upload);
    // they are the only routes without the small body limit.
    let uploads = Router::new()
        .route("/inbox/{doc_id}/reply", post(answers::reply))
        .route("/compose", post(compose))
        .layer(axum::extract::DefaultBodyLimit::disable());
    let forms = Router::new()
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/", get(pending_page))
        .route("/inbox", get(inbox_page))
        .route("/inbox/{doc_id}", get(received_page))
        .route("/inbox/{doc_id}/ack", post(ack))
        .route("/inbox/{doc_id}/reject", post(reject))
        .route("/inbox/{doc_id}/files/{name}", get(download))
        .route("/inbox/{doc_id}/read/{name}", get(read_page))
        .route("/inbox/{doc_id}/read/{name}/{page}", get(read_image))
        .route("/inbox/{doc_id}/forward", post(answers::forward))
        .route("/inbox/{doc_id}/print/handling", get(print::print_handling))
        .route(
            "/inbox/{doc_id}/print/slip",
            get(print::print_received_slip),
        )
        .route("/sent/{doc_id}/slip/{unit}", get(print::print_sent_slip))
        .route("/compose", get(compose_page))
        .route("/sent", get(sent_list))
        .route("/sent/{doc_id}", get(sent_doc))
        .route("/sent/{doc_id}/recall", post(recall))
        .route("/sent/{doc_id}/urge", post(urge))
        .route("/sent/{doc_id}/aside", post(put_aside))
        .route("/problems/resend", post(problems::resend_failed))
        .route("/problems/delete", post(problems::delete_failed))
        .route("/sent/{doc_id}/{file}", get(answers::summary_file))
        .route("/supervision", get(supervision::supervision_page))
        .route("/supervision/overdue.csv", get(supervision::overdue_csv))
        .route("/supervision/press", post(supervision::press))
        .route("/supervision/report.csv", get(supervision::report_csv))
        .route(
            "/api/v1/supervision/{query}",
            get(supervision::api_supervision),
        )
        .route("/problems", get(problems::problems_page))
        .route("/status", get(status_page))
        .route("/api/v1/status", get(api_status))
        .route("/assets/style.css", get(style))
        // Browsers ask for it on their own; no icon, and no redirect to
        // the login form (which would hand out another token).
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/v1/inbox", get(api_inbox))
        .route("/api/v1/inbox/{doc_id}/ack", post(api_ack))
        .route("/api/v1/inbox/{doc_id}/reject", post(api_reject))
        .route("/api/v1/inbox/{doc_id}", get(api_received_doc))
        .route("/api/v1/sent", get(api_sent_list))
        .route("/api/v1/sent/{doc_id}", get(api_sent_doc))
        .route("/api/v1/sent/{doc_id}/recall", post(api_recall))
        .route("/api/v1/sent/{doc_id}/urge", post(api_urge))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(within_request_timeout));
    uploads
        .merge(forms)
        .layer(axum::middleware::from_fn_with_state(web.clone(), gate))
        .layer(axum::middleware::from_fn_with_state(
            web.clone(),
            security_headers,
        ))
        .with_state(web)
}

/// What may be asked without a session: the login form and what it
/// needs.
fn is_public(method: &axum::http::Method, path: &str) -> bool {
    match path {
        "/login" => true,
        "/assets/style.css" | "/favicon.ico" => method == axum::http::Method::GET,
        _ => false,
    }
}

/// Every request but the login form's needs a session or a bearer token,
/// checked from its headers before a byte of its body is read: a client
/// with neither gets its answer at once and costs nothing more. A login
/// form's body is small.
async fn gate(
    State(web): State<Arc<Web>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = req.uri().path();
    if is_public(req.method(), path) {
        if path == "/login" && body_announced(req.headers()) > MAX_LOGIN_BYTES as u64 {
            return StatusCode::PAYLOAD_TOO_LARGE.into_response();
        }
        let (parts, body) = req.into_parts();
        let req = axum::extract::Request::from_parts(
            parts,
            Body::new(http_body_util::Limited::new(body, MAX_LOGIN_BYTES)),
        );
        return next.run(req).await;
    }
    if web.who(req.headers()).is_some() {
        return next.run(req).await;
    }
    if path.starts_with("/api/") {
        api_error(
            StatusCode::UNAUTHORIZED,
            "log in, or send Authorization: Bearer <token>",
        )
    } else if req.method() == axum::http::Method::GET {
        Redirect::to("/login").into_response()
    } else {
        forbidden("请先登录。没有做任何更改。")
    }
}

/// The body length a request announces (0 when it announces none).
fn body_announced(headers: &HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A request that is not an upload is answered within [`REQUEST_TIMEOUT`],
/// its body included: a client that trickles a form is cut off.
async fn within_request_timeout(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (StatusCode::REQUEST_TIMEOUT, "request timed out").into_response(),
    }
}

async fn security_headers(
    State(web): State<Arc<Web>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if web.secure {
        // Served over HTTPS: the browser never falls back to plain HTTP.
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Who is asking.
#[derive(Debug, Clone)]
enum Who {
    /// A logged-in browser, with its CSRF token.
    Session { user: User, csrf: String },
    /// A script with a bearer token.
    Token { user: User },
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u32>,
    secure: bool,
) -> HeaderValue {
    let age = max_age
        .map(|s| format!("; Max-Age={s}"))
        .unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite=Strict{secure}{age}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl Web {
    fn who(&self, headers: &HeaderMap) -> Option<Who> {
        let accounts = self.logins.accounts();
        if let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return accounts
                .user_for_token(token.trim())
                .map(|u| Who::Token { user: u.clone() });
        }
        let cookie = cookie(headers, SESSION_COOKIE)?;
        let s = self.logins.session(cookie)?;
        let user = accounts.user(&s.user)?.clone();
        Some(Who::Session { user, csrf: s.csrf })
    }

    /// What every page shows around its body: who, this unit, whether
    /// it is cut off from the hub, and what waits on the clerk.
    async fn frame<'a>(&'a self, user: &'a User, csrf: &'a str) -> Frame<'a> {
        let waiting = self
            .parts
            .store()
            .run(|s| s.waiting_counts())
            .await
            .unwrap_or_default();
        let folders = self.parts.identity().folders().clone();
        let problems = tokio::task::spawn_blocking(move || crate::actions::failed::count(&folders))
            .await
            .unwrap_or(0);
        Frame {
            user,
            csrf,
            unit: &self.unit,
            supervisor: self.facts.role == gongwen_common::Role::Supervisor,
            names: self.parts.known().names(),
            cut_off: self.cut_off(),
            counts: pages::NavCounts {
                pending: waiting.pending,
                returned: waiting.returned,
                problems,
            },
        }
    }

    /// Make sure the directory held names `ids`: one that is not in it
    /// (a unit that joined since it was last read) has it read again now,
    /// if the hub can be asked. What a page that names units calls first.
    pub(super) async fn know_units(&self, ids: Vec<String>) {
        let missing = {
            let names = self.parts.known().names();
            ids.iter().any(|id| !id.contains('@') && !names.knows(id))
        };
        if missing && self.parts.clerk().connected() {
            let _ = self
                .parts
                .known()
                .refresh(self.parts.link(), self.parts.identity())
                .await;
        }
    }

    /// The units whose name or id contains `typed` (see
    /// [`UnitNames::matching`]); when none in the directory held does, it
    /// is read again first (a unit that joined since).
    async fn units_matching(&self, typed: &str) -> Vec<String> {
        let found = {
            let names = self.parts.known().names();
            let found = names.matching(typed);
            if typed.trim().is_empty() || found.iter().any(|id| names.knows(id)) {
                return found;
            }
            found
        };
        if !self.parts.clerk().connected() {
            return found;
        }
        let _ = self
            .parts
            .known()
            .refresh(self.parts.link(), self.parts.identity())
            .await;
        self.parts.known().names().matching(typed)
    }

    /// Why this unit cannot reach the hub now, in a clerk's words; none
    /// while connected (or still starting).
    fn cut_off(&self) -> Option<String> {
        use crate::link::state::LinkState;
        match &*self.facts.link.borrow() {
            LinkState::Disconnected { error, retry_in } => Some(format!(
                "{}，{:.0} 秒后重试。期间可以照常签收、退回和拟稿，公文和回执在连上后自动送出。",
                error.chinese(),
                retry_in.as_secs_f64().ceil()
            )),
            _ => None,
        }
    }
}

/// A form that changes something: a session, and its CSRF token in the
/// form. Refused with 403 (nothing changed) otherwise.
fn need_form_session(
    web: &Web,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<(User, String), Response> {
    match web.who(headers) {
        Some(Who::Session {
            user,
            csrf: expected,
        }) if same_secret(csrf, &expected) => Ok((user, expected)),
        Some(Who::Session { .. }) => Err(forbidden(
            "这个表单已过期或无效（CSRF 令牌不符），没有做任何更改。请返回页面重新提交。",
        )),
        _ => Err(forbidden("请先登录。没有做任何更改。")),
    }
}

/// A page visit by a logged-in user: who, and the session's CSRF token
/// for the forms the page shows. Without a session, the way to the login
/// form. (Checked before any handler runs; the gate middleware has already
/// refused a request with no session before its body was read.)
struct Page {
    user: User,
    csrf: String,
}

impl FromRequestParts<Arc<Web>> for Page {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut RequestParts,
        web: &Arc<Web>,
    ) -> Result<Page, Response> {
        let headers = &parts.headers;
        match web.who(headers) {
            Some(Who::Session { user, csrf }) => Ok(Page { user, csrf }),
            _ => Err(Redirect::to("/login").into_response()),
        }
    }
}

/// An API read: any logged-in browser or bearer token.
struct Caller;

impl FromRequestParts<Arc<Web>> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut RequestParts,
        web: &Arc<Web>,
    ) -> Result<Caller, Response> {
        let headers = &parts.headers;
        match web.who(headers) {
            Some(_) => Ok(Caller),
            None => Err(api_error(
                StatusCode::UNAUTHORIZED,
                "log in, or send Authorization: Bearer <token>",
            )),
        }
    }
}

/// An API call that may change something: a bearer token, or a page's own
/// call with its session's token in `X-CSRF-Token`.
struct Acting(User);

impl FromRequestParts<Arc<Web>> for Acting {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut RequestParts,
        web: &Arc<Web>,
    ) -> Result<Acting, Response> {
        let headers = &parts.headers;
        match web.who(headers) {
            Some(Who::Token { user }) => Ok(Acting(user)),
            Some(Who::Session { user, csrf }) => {
                let sent = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if same_secret(sent, &csrf) {
                    Ok(Acting(user))
                } else {
                    Err(api_error(
                        StatusCode::FORBIDDEN,
                        "missing or wrong X-CSRF-Token; nothing was changed",
                    ))
                }
            }
            None => Err(api_error(
                StatusCode::UNAUTHORIZED,
                "log in, or send Authorization: Bearer <token>",
            )),
        }
    }
}

/// A form's CSRF token.
trait HasCsrf {
    fn csrf(&self) -> &str;
}

impl<T: HasCsrf> HasCsrf for Form<T> {
    fn csrf(&self) -> &str {
        self.0.csrf()
    }
}

/// A form that changes something, from a logged-in user whose session's
/// CSRF token it carries: who, the token, and the form. Anything else is
/// refused with 403 and nothing changed.
struct Signed<E> {
    user: User,
    csrf: String,
    form: E,
}

impl<E> axum::extract::FromRequest<Arc<Web>> for Signed<E>
where
    E: axum::extract::FromRequest<Arc<Web>> + HasCsrf,
    E::Rejection: IntoResponse,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, web: &Arc<Web>) -> Result<Self, Response> {
        // Who is asking is settled from the headers; the body (already
        // bounded by the gate) is read after.
        let headers = req.headers().clone();
        let form = E::from_request(req, web)
            .await
            .map_err(IntoResponse::into_response)?;
        let (user, csrf) = need_form_session(web, &headers, form.csrf())?;
        Ok(Signed { user, csrf, form })
    }
}

fn forbidden(text: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        pages::message(None, "不允许 (403)", text),
    )
        .into_response()
}

fn server_error(e: impl std::fmt::Display) -> Response {
    warn!("console: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message(None, "出错了 (500)", &format!("{e}")),
    )
        .into_response()
}

async fn not_found(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if web.who(&headers).is_none() {
        return Redirect::to("/login").into_response();
    }
    (
        StatusCode::NOT_FOUND,
        pages::message(None, "没有这个页面 (404)", "请检查地址。"),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

async fn login_page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    if matches!(web.who(&headers), Some(Who::Session { .. })) {
        return Redirect::to("/").into_response();
    }
    login_form(&web, &headers, None, "", StatusCode::OK)
}

/// The login form, with the token its POST must carry back: the one this
/// browser already holds (a second login page — another tab, a redirect
/// of some stray request — must not void the first), or a new one.
fn login_form(
    web: &Web,
    headers: &HeaderMap,
    message: Option<&str>,
    username: &str,
    status: StatusCode,
) -> Response {
    let held = cookie(headers, LOGIN_COOKIE)
        .filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned);
    let Some(csrf) = held.or_else(|| random_hex(16)) else {
        return server_error("the system random generator failed");
    };
    let mut r = (status, pages::login(&csrf, username, message)).into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, &csrf, "/login", None, web.secure),
    );
    r
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf: String,
}

async fn login(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    client: Option<axum::Extension<serve::ClientAddr>>,
    Form(f): Form<LoginForm>,
) -> Response {
    // The login form's own token, against the cookie set with the form.
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|c| same_secret(c, &f.csrf)) {
        return forbidden("登录表单已过期或无效，请重新打开登录页。");
    }
    let name = f.username.trim().to_owned();
    let addr = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
    let accounts = web.logins.accounts();
    let known = accounts.user(&name).is_some();
    // Counted as a failure now, before the hash: attempts in flight can
    // never number more than the lock allows.
    let begun = web.logins.begin(&name, known, addr);
    if let Err(locked) = begun {
        return login_form(
            &web,
            &headers,
            Some(&locked_text(locked)),
            &name,
            StatusCode::FORBIDDEN,
        );
    }
    let Some(slot) = web.logins.hashing_slot().await else {
        web.logins.not_tried(&name, known, addr);
        let mut r = login_form(
            &web,
            &headers,
            Some("登录的人太多，请稍等几秒再试。没有计为失败。"),
            &name,
            StatusCode::SERVICE_UNAVAILABLE,
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    let (n, password) = (name.clone(), f.password);
    let checked = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        accounts.check_password(&n, &password).cloned()
    })
    .await
    .ok()
    .flatten();
    let Some(user) = checked else {
        let locked = web.logins.locked(&name, known);
        warn!(
            "console: failed login for {} from {addr}",
            gongwen_common::logsafe::Clipped(&name)
        );
        let text = match locked {
            Some(left) => locked_text(session::Locked::Account(left)),
            None => "用户名或密码不正确。".to_owned(),
        };
        return login_form(&web, &headers, Some(&text), &name, StatusCode::UNAUTHORIZED);
    };
    web.logins.succeeded(&name, addr);
    let (Some(cookie_value), Some(csrf)) = (random_hex(32), random_hex(16)) else {
        return server_error("the system random generator failed");
    };
    web.logins.start_session(&cookie_value, &user.name, csrf);
    info!("console: {} logged in", user.name);
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &cookie_value, "/", None, web.secure),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_COOKIE, "", "/login", Some(0), web.secure),
    );
    r
}

fn locked_text(locked: session::Locked) -> String {
    let minutes = |left: std::time::Duration| left.as_secs().div_ceil(60).max(1);
    match locked {
        session::Locked::Account(left) => format!(
            "该账户因连续 {} 次登录失败已锁定，请 {} 分钟后再试。",
            session::MAX_FAILURES,
            minutes(left)
        ),
        session::Locked::Address(left) => format!(
            "这台电脑登录失败次数太多，请 {} 分钟后再试。",
            minutes(left)
        ),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    _: Signed<Form<CsrfForm>>,
) -> Response {
    if let Some(c) = cookie(&headers, SESSION_COOKIE) {
        web.logins.end_session(c);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", "/", Some(0), web.secure),
    );
    r
}

/// The sent documents whose returns the clerk has not dealt with.
fn returned_rows(open: Vec<(crate::unit::store::SentRecord, u32)>) -> Vec<pages::ReturnedRow> {
    open.into_iter()
        .map(|(r, n)| pages::ReturnedRow {
            doc_id: r.doc_id.to_string(),
            title: r.title,
            doc_number: r.doc_number,
            sent_ms: r.sent_ms,
            returned: n,
        })
        .collect()
}

async fn pending_page(State(web): State<Arc<Web>>, Page { user, csrf }: Page) -> Response {
    let page = web
        .parts
        .store()
        .run(|s| {
            let (rows, more) = s.received_page(&ReceivedFilter::pending(), 0, PAGE_SIZE)?;
            Ok((rows, more, s.returned_open()?, s.answers_not_at_hub()?))
        })
        .await;
    match page {
        Ok((rows, more, returned, unsent)) => pages::pending(
            &web.frame(&user, &csrf).await,
            &rows,
            more,
            web.parts.identity().now_ms(),
            &returned_rows(returned),
            &unsent,
        )
        .into_response(),
        Err(e) => server_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct InboxQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    q: String,
    /// Received on or after this day (YYYY-MM-DD, Beijing time).
    #[serde(default)]
    from: String,
    /// Received on or before this day.
    #[serde(default)]
    to: String,
    page: Option<usize>,
}

/// Midnight of a day (YYYY-MM-DD) in Beijing time, as Unix ms.
fn beijing_day_ms(day: &str) -> Option<i64> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(day.trim(), &format).ok()?;
    let offset = time::UtcOffset::from_hms(8, 0, 0).ok()?;
    let t = date.midnight().assume_offset(offset);
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl InboxQuery {
    fn filter(&self) -> ReceivedFilter {
        let state = [
            ReceivedState::Delivered,
            ReceivedState::Quarantined,
            ReceivedState::Acknowledged,
            ReceivedState::Rejected,
            ReceivedState::Recalled,
        ]
        .into_iter()
        .find(|s| s.as_str() == self.state);
        ReceivedFilter {
            states: state.into_iter().collect(),
            sender: Some(self.sender.trim().to_owned()).filter(|s| !s.is_empty()),
            text: Some(self.q.trim().to_owned()).filter(|t| !t.is_empty()),
            since_ms: beijing_day_ms(&self.from),
            // Through the whole of that day.
            until_ms: beijing_day_ms(&self.to).map(|t| t + 86_400_000),
        }
    }

    fn view(&self) -> InboxQueryView {
        let mut base = String::new();
        for (k, v) in [
            ("state", &self.state),
            ("sender", &self.sender),
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
        ] {
            if !v.is_empty() {
                base.push_str(&format!("{k}={}&", pages::percent(v)));
            }
        }
        InboxQueryView {
            state: self.state.clone(),
            sender: self.sender.clone(),
            q: self.q.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            page: self.page.unwrap_or(1).max(1),
            base,
        }
    }
}

async fn inbox_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Query(q): Query<InboxQuery>,
) -> Response {
    let view = q.view();
    let filter = q.filter();
    let offset = (view.page - 1).saturating_mul(PAGE_SIZE);
    match web
        .parts
        .store()
        .run(move |s| {
            let (rows, more) = s.received_page(&filter, offset, PAGE_SIZE)?;
            Ok((rows, more, s.answers_not_at_hub()?))
        })
        .await
    {
        Ok((rows, more, unsent)) => pages::inbox(
            &web.frame(&user, &csrf).await,
            &view,
            &rows,
            more,
            web.parts.identity().now_ms(),
            &unsent,
        )
        .into_response(),
        Err(e) => server_error(e),
    }
}

/// A received document, its signed header, and where its files are.
async fn received(
    web: &Web,
    doc_id: &str,
) -> Result<(ReceivedRecord, Option<SealedHeader>), Response> {
    let not_found = || {
        (
            StatusCode::NOT_FOUND,
            pages::message(
                None,
                "没有这份公文 (404)",
                "本单位没有收到过这个编号的公文。",
            ),
        )
            .into_response()
    };
    let doc_id = DocId::parse(doc_id).map_err(|_| not_found())?;
    let found = web
        .parts
        .store()
        .run(move |s| Ok((s.received(doc_id)?, s.header(doc_id)?)))
        .await
        .map_err(server_error)?;
    match found {
        (Some((rec, _)), header) => Ok((rec, header.and_then(|h| SealedHeader::parse(&h).ok()))),
        (None, _) => Err(not_found()),
    }
}

/// `?done=…`: what the act that led back to a page did.
#[derive(Debug, Default, Deserialize)]
struct DoneQuery {
    #[serde(default)]
    done: String,
}

impl DoneQuery {
    fn done(&self) -> Option<pages::Done> {
        pages::Done::parse(&self.done)
    }
}

async fn received_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Path(doc_id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let (rec, sealed) = match received(&web, &doc_id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    doc_page(&web, &user, &csrf, &rec, sealed.as_ref(), None, q.done()).await
}

async fn doc_page(
    web: &Web,
    user: &User,
    csrf: &str,
    rec: &ReceivedRecord,
    sealed: Option<&SealedHeader>,
    message: Option<&str>,
    done: Option<pages::Done>,
) -> Response {
    let files: Vec<FileLink> = sealed
        .map(|s| pages::file_links(s.meta()))
        .unwrap_or_default();
    let dir = crate::incoming::clerk::document_dir(web.parts.identity(), rec);
    let (notices, ofd) = tokio::task::spawn_blocking(move || {
        (
            read_notices(&dir),
            crate::rules::metadata::OfdFindings::read(&dir),
        )
    })
    .await
    .unwrap_or_default();
    let doc = rec.doc_id;
    let (answered, unsent) = web
        .parts
        .store()
        .run(move |s| Ok((s.replied(doc)?, s.answers_not_at_hub()?)))
        .await
        .unwrap_or_default();
    if let Some(m) = sealed.map(SealedHeader::meta) {
        let ids = m.to.iter().chain(&m.cc).map(|n| n.to_string()).collect();
        web.know_units(ids).await;
    }
    let directory = web.parts.known().get();
    let frame = web.frame(user, csrf).await;
    let connected = frame.cut_off.is_none();
    pages::received_doc(
        &frame,
        rec,
        sealed.map(SealedHeader::meta),
        &files,
        &notices,
        pages::Said {
            refused: message,
            done,
            connected,
        },
        &pages::DocActs {
            answered,
            dir: directory.as_deref(),
            me: web.parts.identity().node_id(),
            ofd: &ofd,
            copy_no: sealed
                .and_then(|s| crate::rules::metadata::copy_no(s, web.parts.identity().node_id())),
        },
        &unsent,
    )
    .into_response()
}

/// A received file that renders (a PDF), where it is, and where its pages
/// are cached; a 404 for anything else.
async fn readable(
    web: &Web,
    doc_id: &str,
    name: &str,
) -> Result<(ReceivedRecord, PathBuf, PathBuf), Response> {
    let (rec, sealed) = received(web, doc_id).await?;
    let entry = sealed.as_ref().and_then(|s| {
        s.meta()
            .files
            .iter()
            .find(|f| f.name == name && crate::actions::render::renders(&f.name))
            .cloned()
    });
    let Some(entry) = entry else {
        return Err((
            StatusCode::NOT_FOUND,
            pages::message(
                None,
                "没有这个文件 (404)",
                "这份公文没有可以在线阅读的这个文件。",
            ),
        )
            .into_response());
    };
    let me = web.parts.identity();
    let file = crate::incoming::clerk::document_dir(me, &rec).join(&entry.name);
    let cache = crate::actions::render::cache_dir(&me.folders().state, rec.doc_id, &entry.sha256);
    Ok((rec, file, cache))
}

/// GET /inbox/{doc}/read/{name}: the file's pages.
async fn read_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Path((doc_id, name)): Path<(String, String)>,
) -> Response {
    let (rec, file, cache) = match readable(&web, &doc_id, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let pages = crate::actions::render::page_count(&file, &cache).await;
    let dir = crate::incoming::clerk::document_dir(web.parts.identity(), &rec);
    let mut ofd =
        tokio::task::spawn_blocking(move || crate::rules::metadata::OfdFindings::read(&dir))
            .await
            .unwrap_or_default();
    ofd.seals.retain(|s| s.file == name);
    ofd.ofd_problems.retain(|p| p.file == name);
    pages::reading(&web.frame(&user, &csrf).await, &rec, &name, pages, &ofd).into_response()
}

/// GET /inbox/{doc}/read/{name}/{page}: one page as a PNG, rendered once.
async fn read_image(
    State(web): State<Arc<Web>>,
    _: Page,
    Path((doc_id, name, page)): Path<(String, String, u32)>,
) -> Response {
    let (_, file, cache) = match readable(&web, &doc_id, &name).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match crate::actions::render::page_png(&file, page, &cache).await {
        Ok(png) => match tokio::fs::read(&png).await {
            Ok(bytes) => {
                let mut r = Response::new(Body::from(bytes));
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=86400"),
                );
                r
            }
            Err(e) => server_error(e),
        },
        Err(why) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            pages::message(None, "正文无法显示", &why),
        )
            .into_response(),
    }
}

/// The urging and supervision notices filed beside a received document.
fn read_notices(dir: &std::path::Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                (n.starts_with("催办通知-") || n.starts_with("督办单-")) && n.ends_with(".txt")
            })
        })
        .collect();
    names.sort();
    names
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

#[derive(Debug, Deserialize)]
struct AckForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    by: String,
}

#[derive(Debug, Deserialize)]
struct RejectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

async fn ack(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<AckForm>>,
) -> Response {
    let by = Some(f.by.trim().to_owned())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| user.display_name.clone());
    act(&web, &user, &csrf, &doc_id, ReceiptKind::Acknowledged, by).await
}

async fn reject(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<RejectForm>>,
) -> Response {
    act(
        &web,
        &user,
        &csrf,
        &doc_id,
        ReceiptKind::Rejected,
        f.reason.trim().to_owned(),
    )
    .await
}

/// Sign for or return a document, as `gongwen-agent ack` / `reject` do;
/// on refusal, the reason in plain words (nothing changed).
async fn answer(
    web: &Web,
    doc: DocId,
    kind: ReceiptKind,
    detail: String,
    by_user: &str,
) -> Result<ReceivedRecord, String> {
    if detail.trim().is_empty() {
        return Err(match kind {
            ReceiptKind::Rejected => "退回必须填写理由。".into(),
            _ => "签收人不能为空。".into(),
        });
    }
    let rec = web.parts.clerk().answer(doc, kind, detail).await?;
    info!(doc = %doc, "{} by {by_user} through the console", kind.as_str());
    Ok(rec)
}

/// The page form of [`answer`]: back to the document, with the refusal
/// shown on it if there was one.
async fn act(
    web: &Arc<Web>,
    user: &User,
    csrf: &str,
    doc_id: &str,
    kind: ReceiptKind,
    detail: String,
) -> Response {
    let (rec, sealed) = match received(web, doc_id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    match answer(web, rec.doc_id, kind, detail, &user.name).await {
        Ok(_) => {
            let done = match kind {
                ReceiptKind::Rejected => pages::Done::Returned,
                _ => pages::Done::SignedFor,
            };
            Redirect::to(&format!("/inbox/{}?done={}", rec.doc_id, done.as_str())).into_response()
        }
        Err(text) => {
            let mut r = doc_page(web, user, csrf, &rec, sealed.as_ref(), Some(&text), None).await;
            *r.status_mut() = StatusCode::CONFLICT;
            r
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct PageQuery {
    page: Option<usize>,
    #[serde(default)]
    done: String,
}

async fn sent_list(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Query(q): Query<PageQuery>,
) -> Response {
    let page = q.page.unwrap_or(1).max(1);
    let offset = (page - 1).saturating_mul(PAGE_SIZE);
    let listed = web
        .parts
        .store()
        .run(move |s| {
            let (records, more) = s.sent_page(offset, PAGE_SIZE)?;
            let mut rows = Vec::with_capacity(records.len());
            for r in records {
                let receipts = s.receipts(r.doc_id)?;
                let held = |kind: ReceiptKind| {
                    r.recipients
                        .iter()
                        .filter(|u| receipts.iter().any(|(who, k, _)| who == *u && *k == kind))
                        .count()
                };
                rows.push(pages::SentRow {
                    signed: held(ReceiptKind::Acknowledged),
                    returned: held(ReceiptKind::Rejected),
                    doc_id: r.doc_id.to_string(),
                    title: r.title,
                    doc_number: r.doc_number,
                    sent_ms: r.sent_ms,
                    total: r.recipients.len(),
                });
            }
            Ok((rows, more, s.returned_open()?))
        })
        .await;
    match listed {
        Ok((rows, more, returned)) => pages::sent(
            &web.frame(&user, &csrf).await,
            &rows,
            page,
            more,
            &returned_rows(returned),
            pages::Done::parse(&q.done),
        )
        .into_response(),
        Err(e) => server_error(e),
    }
}

/// Milliseconds of an RFC 3339 time the hub gave.
fn time_ms(t: &Option<String>) -> Option<i64> {
    let t = gongwen_common::timefmt::parse_rfc3339(t.as_deref()?).ok()?;
    Some((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// The 签收情况 rows of the hub's `status` answer.
fn hub_sign_rows(
    st: &gongwen_common::supervision::DocStatus,
    names: &crate::unit::directory::UnitNames,
) -> Vec<pages::SignRow> {
    st.recipients
        .iter()
        .map(|r| pages::SignRow {
            unit: names.show(&r.recipient).to_owned(),
            unit_id: r.recipient.clone(),
            copy: Some(r.copy.chinese()),
            state: r.state.into(),
            delivered_ms: time_ms(&r.delivered_at),
            signed_by: r.acknowledged_by.clone(),
            signed_ms: time_ms(&r.acknowledged_at),
            // Why it was returned, or why it cannot be opened or
            // delivered (a hub further on refused it for good).
            returned_reason: r
                .rejected_reason
                .clone()
                .or_else(|| r.quarantine_reason.clone()),
            urge_count: Some(r.urge_count),
            deadline_ms: time_ms(&r.deadline),
            overdue: r.overdue,
            seals: Vec::new(),
        })
        .collect()
}

/// What the page and the API say about one document this unit sent.
struct SentView {
    record: crate::unit::store::SentRecord,
    rows: Vec<pages::SignRow>,
    source: pages::Source,
    /// The hub's answer (the API passes it on), when there was one.
    hub: Option<gongwen_common::supervision::DocStatus>,
}

/// The 签收情况 of a document this unit sent: from the hub (deadlines, urge
/// counts, 主送/抄送), or, when it cannot be asked, from this unit's
/// receipts.
async fn sent_view(web: &Web, doc_id: &str) -> Result<Option<SentView>, Response> {
    let Ok(doc) = DocId::parse(doc_id) else {
        return Ok(None);
    };
    let found = web
        .parts
        .store()
        .run(move |s| {
            let Some(rec) = s.sent(doc)? else {
                return Ok(None);
            };
            let local = crate::outgoing::status::doc_status(s, &rec)?;
            Ok(Some((rec, local)))
        })
        .await
        .map_err(server_error)?;
    let Some((record, local)) = found else {
        return Ok(None);
    };
    web.know_units(record.recipients.iter().map(|n| n.to_string()).collect())
        .await;
    let names = web.parts.known().names();
    if let Some(v) = web.parts.clerk().hub_status(doc).await {
        let mut rows = hub_sign_rows(&v, &names);
        // The seals each recipient saw are in its receipts, held here.
        for row in &mut rows {
            if let Some(l) = local.recipients.iter().find(|l| l.recipient == row.unit_id) {
                row.seals = l.seals.clone();
            }
        }
        return Ok(Some(SentView {
            record,
            rows,
            source: pages::Source::Hub,
            hub: Some(v),
        }));
    }
    let rows = local
        .recipients
        .iter()
        .map(|r| pages::SignRow {
            unit: names.show(&r.recipient).to_owned(),
            unit_id: r.recipient.clone(),
            state: r.state,
            delivered_ms: time_ms(&r.delivered_at),
            signed_by: r.acknowledged_by.clone(),
            signed_ms: time_ms(&r.acknowledged_at),
            returned_reason: r.state.is_returned().then(|| r.reason.clone()).flatten(),
            copy: None,
            urge_count: None,
            deadline_ms: None,
            overdue: false,
            seals: r.seals.clone(),
        })
        .collect();
    Ok(Some(SentView {
        record,
        rows,
        source: pages::Source::Local,
        hub: None,
    }))
}

fn no_such_sent() -> Response {
    (
        StatusCode::NOT_FOUND,
        pages::message(
            None,
            "没有这份公文 (404)",
            "本单位没有发出过这个编号的公文。",
        ),
    )
        .into_response()
}

async fn sent_doc_page(
    web: &Web,
    user: &User,
    csrf: &str,
    doc_id: &str,
    message: Option<&str>,
    done: Option<pages::Done>,
) -> Response {
    if let Ok(doc) = DocId::parse(doc_id) {
        let failed = web
            .parts
            .store()
            .run(move |s| s.failed(doc))
            .await
            .ok()
            .flatten();
        if let Some(f) = failed {
            let frame = web.frame(user, csrf).await;
            let whom = frame
                .names
                .list(f.to.iter().chain(&f.cc).map(String::as_str));
            return (
                StatusCode::OK,
                pages::message(
                    Some(&frame),
                    "发送失败",
                    &format!(
                        "这份公文没有发出（原收文单位：{whom}）。原因：{}\n请到“问题”页面改正后重新发送，或删除。",
                        f.reason
                    ),
                ),
            )
                .into_response();
        }
        let folders = web.parts.identity().folders().clone();
        let queued = tokio::task::spawn_blocking(move || {
            crate::outgoing::spool::holds(&folders, doc)
                .then(|| crate::outgoing::outbox::queued_facts(&folders, doc))
        })
        .await
        .ok()
        .flatten();
        if let Some((title, to)) = queued {
            let frame = web.frame(user, csrf).await;
            let to = frame.names.list(to.iter().map(String::as_str));
            let progress = web.parts.outgoing().progress(doc);
            return pages::sending(&frame, &title, &to, progress).into_response();
        }
    }
    match sent_view(web, doc_id).await {
        Ok(Some(v)) => {
            let summary = answers::summary(web, v.record.doc_id, v.hub.clone()).await;
            let doc = v.record.doc_id;
            let (returns_open, header) = web
                .parts
                .store()
                .run(move |s| Ok((s.returns_open(doc)?, s.header(doc)?)))
                .await
                .unwrap_or_default();
            let sealed = header.and_then(|h| SealedHeader::parse(&h).ok());
            pages::sent_doc(
                &web.frame(user, csrf).await,
                &v.record,
                &v.rows,
                v.source,
                summary.as_ref(),
                message,
                done,
                returns_open,
                sealed.as_ref().map(SealedHeader::meta),
            )
            .into_response()
        }
        Ok(None) => no_such_sent(),
        Err(r) => r,
    }
}

async fn sent_doc(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Path(doc_id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    sent_doc_page(&web, &user, &csrf, &doc_id, None, q.done()).await
}

/// 不再提示: the clerk has seen the returns of a sent document and will
/// not send it again; it leaves the 已退回 list until another return.
async fn put_aside(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed { user, .. }: Signed<Form<CsrfForm>>,
) -> Response {
    let Ok(doc) = DocId::parse(&doc_id) else {
        return no_such_sent();
    };
    match web.parts.store().run(move |s| s.close_returns(doc)).await {
        Ok(()) => {
            info!(doc = %doc, "returns put aside by {} through the console", user.name);
            Redirect::to(&format!("/sent/{doc}?done=aside")).into_response()
        }
        Err(e) => server_error(e),
    }
}

#[derive(Debug, Default, Deserialize)]
struct RecallForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// Withdraw (撤回) or urge (催办) a document this unit sent; the hub's
/// answer, or why not in plain words.
async fn sender_act(
    web: &Web,
    doc_id: &str,
    recall_reason: Option<String>,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let doc =
        DocId::parse(doc_id).map_err(|_| (StatusCode::NOT_FOUND, "没有这份公文。".to_owned()))?;
    let mine = web
        .parts
        .store()
        .run(move |s| s.sent(doc))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if mine.is_none() {
        return Err((StatusCode::NOT_FOUND, "本单位没有发出过这份公文。".into()));
    }
    let done = match recall_reason {
        Some(reason) => web.parts.clerk().recall(doc, reason).await,
        None => web.parts.clerk().urge(doc, Vec::new()).await,
    };
    done.map_err(|e| (StatusCode::CONFLICT, e))
}

async fn recall(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed {
        user,
        csrf,
        form: Form(f),
    }: Signed<Form<RecallForm>>,
) -> Response {
    let reason = Some(f.reason.trim().to_owned());
    sender_form(&web, &user, &csrf, &doc_id, reason).await
}

async fn urge(
    State(web): State<Arc<Web>>,
    Path(doc_id): Path<String>,
    Signed { user, csrf, .. }: Signed<Form<CsrfForm>>,
) -> Response {
    sender_form(&web, &user, &csrf, &doc_id, None).await
}

/// The 撤回 (with its reason) and 催办 forms: back to the document, with
/// the hub's refusal on it if there was one.
async fn sender_form(
    web: &Web,
    user: &User,
    csrf: &str,
    doc_id: &str,
    recall_reason: Option<String>,
) -> Response {
    let (act, done) = if recall_reason.is_some() {
        ("recalled", pages::Done::Recalled)
    } else {
        ("urged", pages::Done::Urged)
    };
    match sender_act(web, doc_id, recall_reason).await {
        Ok(_) => {
            info!(doc = %doc_id, "{act} by {} through the console", user.name);
            Redirect::to(&format!("/sent/{doc_id}?done={}", done.as_str())).into_response()
        }
        Err((status, text)) => {
            let mut r = sent_doc_page(web, user, csrf, doc_id, Some(&text), None).await;
            *r.status_mut() = status;
            r
        }
    }
}

async fn api_sent_doc(
    State(web): State<Arc<Web>>,
    _: Caller,
    Path(doc_id): Path<String>,
) -> Response {
    match sent_view(&web, &doc_id).await {
        Ok(Some(SentView { hub: Some(v), .. })) => axum::Json(v).into_response(),
        Ok(Some(SentView { record, .. })) => {
            let doc = record.doc_id;
            match web
                .parts
                .store()
                .run(move |s| {
                    let rec = s.sent(doc)?;
                    rec.map(|r| crate::outgoing::status::doc_status(s, &r))
                        .transpose()
                })
                .await
            {
                Ok(Some(st)) => axum::Json(st).into_response(),
                Ok(None) => api_error(StatusCode::NOT_FOUND, "no such document"),
                Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
            }
        }
        Ok(None) => api_error(StatusCode::NOT_FOUND, "no such document"),
        Err(r) => r,
    }
}

/// `GET /api/v1/inbox/{doc_id}`: the row `inbox --json` prints for it.
async fn api_received_doc(
    State(web): State<Arc<Web>>,
    _: Caller,
    Path(doc_id): Path<String>,
) -> Response {
    match received(&web, &doc_id).await {
        Ok((rec, _)) => match crate::incoming::clerk::inbox_rows(vec![rec], false).pop() {
            Some(row) => axum::Json(row).into_response(),
            None => api_error(StatusCode::NOT_FOUND, "no such document"),
        },
        Err(_) => api_error(StatusCode::NOT_FOUND, "no such document"),
    }
}

/// `GET /api/v1/sent[?page=N]`: what `status --json` prints, 50 a page,
/// newest first.
async fn api_sent_list(
    State(web): State<Arc<Web>>,
    _: Caller,
    Query(q): Query<PageQuery>,
) -> Response {
    let offset = q.page.unwrap_or(1).max(1).saturating_sub(1) * PAGE_SIZE;
    let listed = web
        .parts
        .store()
        .run(move |s| {
            let (records, _) = s.sent_page(offset, PAGE_SIZE)?;
            records
                .iter()
                .map(|r| crate::outgoing::status::doc_status(s, r))
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
    match listed {
        Ok(rows) => axum::Json(rows).into_response(),
        Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn api_sender_act(web: &Web, doc_id: &str, recall_reason: Option<String>) -> Response {
    match sender_act(web, doc_id, recall_reason).await {
        Ok(v) => axum::Json(v).into_response(),
        Err((status, text)) => api_error(status, &text),
    }
}

async fn api_recall(
    State(web): State<Arc<Web>>,
    _: Acting,
    Path(doc_id): Path<String>,
    body: Option<axum::Json<ApiAct>>,
) -> Response {
    let reason = body.map(|b| b.0.reason).unwrap_or_default();
    api_sender_act(&web, &doc_id, Some(reason)).await
}

async fn api_urge(State(web): State<Arc<Web>>, _: Acting, Path(doc_id): Path<String>) -> Response {
    api_sender_act(&web, &doc_id, None).await
}

#[derive(Debug, Default, Deserialize)]
struct ComposeQuery {
    /// A returned document to send again, its fields filled in.
    #[serde(default)]
    from: String,
}

/// The compose form filled from a document this unit sent (修改后重新发送):
/// its recipients and fields, as its signed header says them.
async fn compose_from(web: &Web, doc_id: &str) -> pages::ComposeView {
    let mut v = pages::ComposeView::default();
    let Ok(doc) = DocId::parse(doc_id) else {
        return v;
    };
    let header = web
        .parts
        .store()
        .run(move |s| s.header(doc))
        .await
        .ok()
        .flatten()
        .and_then(|h| SealedHeader::parse(&h).ok());
    if let Some(h) = header {
        let m = h.meta();
        v.to = m.to.iter().map(|n| n.to_string()).collect();
        v.cc = m.cc.iter().map(|n| n.to_string()).collect();
        v.title = m.title.clone();
        v.doc_number = m.doc_number.clone();
        v.doc_type = m.doc_type.clone();
        v.urgency = m.urgency.as_str().to_owned();
        v.operator = m.operator.name.clone();
        v.phone = m.operator.phone.clone();
        v.note = m.note.clone();
        v.set_elements(&m.elements);
        v.resend_of = doc.to_string();
    }
    v
}

async fn compose_page(
    State(web): State<Arc<Web>>,
    Page { user, csrf }: Page,
    Query(q): Query<ComposeQuery>,
) -> Response {
    // Asked afresh (a unit that joined a minute ago is there), or as last
    // heard when the hub cannot be asked now.
    let dir = match web
        .parts
        .known()
        .refresh(web.parts.link(), web.parts.identity())
        .await
    {
        Ok(d) => Some(d),
        Err(_) => web.parts.known().get(),
    };
    let view = compose_from(&web, q.from.trim()).await;
    pages::compose(
        &web.frame(&user, &csrf).await,
        dir.as_deref(),
        web.parts.identity().node_id(),
        &view,
        None,
        web.parts.identity().config().max_document_size,
    )
    .into_response()
}

/// Uploaded files being received, in a folder of their own under `state/`
/// (the spool's file system, so a claim moves them in), removed when done
/// (a claim has moved out whatever it took).
struct Staging {
    dir: PathBuf,
    /// The main text first, then the attachments.
    files: Vec<PathBuf>,
    has_main: bool,
    bytes: u64,
}

impl Staging {
    /// A fresh folder under `state/uploads/`.
    async fn new(web: &Web) -> Result<Staging, Response> {
        let Some(token) = random_hex(8) else {
            return Err(server_error("the system random generator failed"));
        };
        let staging = Staging {
            dir: web
                .parts
                .identity()
                .folders()
                .state
                .join("uploads")
                .join(token),
            files: Vec::new(),
            has_main: false,
            bytes: 0,
        };
        tokio::fs::create_dir_all(&staging.dir)
            .await
            .map_err(|e| server_error(format!("{}: {e}", staging.dir.display())))?;
        Ok(staging)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Read a form with files (compose, reply): the `csrf` field first
/// (nothing else is read without it: a 403 comes back as `Err`), then the
/// fields, each handed to `field`, and the files, streamed to `staging`
/// (a file field named `main` first). The third value is a problem to show
/// on the form.
async fn read_upload(
    web: &Web,
    headers: &HeaderMap,
    mut form: axum::extract::Multipart,
    staging: &mut Staging,
    mut field: impl FnMut(&str, String),
) -> Result<(User, String, Option<String>), Response> {
    // The gate let only a session or a token this far; a form also
    // carries its CSRF token, first, and nothing else is read without it.
    let idle =
        |what: &'static str| format!("上传中断：{UPLOAD_IDLE_TIMEOUT:?} 内没有收到数据 ({what})");
    let first = tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, form.next_field())
        .await
        .ok()
        .and_then(|f| f.ok().flatten());
    let csrf = match first {
        Some(mut f) if f.name() == Some("csrf") => {
            small_field(&mut f, 128).await.ok().unwrap_or_default()
        }
        _ => String::new(),
    };
    let (user, csrf) = need_form_session(web, headers, &csrf)?;
    let limit = web.parts.identity().config().max_document_size;
    let mut text_bytes = 0usize;
    let problem = loop {
        let mut part = match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, form.next_field()).await {
            Ok(Ok(Some(f))) => f,
            Ok(Ok(None)) => break None,
            Ok(Err(e)) => break Some(format!("上传中断或格式不对：{e}")),
            Err(_) => break Some(idle("fields")),
        };
        let name = part.name().unwrap_or_default().to_owned();
        let Some(file_name) = part.file_name().map(str::to_owned) else {
            match small_field(&mut part, MAX_FIELD_BYTES).await {
                Ok(value) => {
                    text_bytes += value.len();
                    if text_bytes > MAX_FORM_BYTES {
                        break Some(
                            "表单的文字太多 (the form's text fields are too long)。".into(),
                        );
                    }
                    field(&name, value);
                }
                Err(why) => break Some(why),
            }
            continue;
        };
        if file_name.is_empty() {
            continue; // a file input left empty
        }
        if let Err(e) = gongwen_common::envelope::check_file_name(&file_name) {
            break Some(format!("文件名不能用：{e}"));
        }
        let is_main = name == "main";
        if is_main && staging.has_main {
            break Some("正文只能有一个文件；其余请作为附件。".into());
        }
        let path = staging.dir.join(&file_name);
        if staging.files.contains(&path) {
            break Some(format!("两个文件同名：{file_name}"));
        }
        if let Err(why) = stage_file(&mut part, &path, staging, limit).await {
            break Some(why);
        }
        if is_main {
            staging.files.insert(0, path);
            staging.has_main = true;
        } else {
            staging.files.push(path);
        }
    };
    Ok((user, csrf, problem))
}

/// One uploaded file written into the staging folder as it arrives, the
/// whole upload held to `limit` bytes and each wait to the idle timeout.
async fn stage_file(
    part: &mut axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
    staging: &mut Staging,
    limit: u64,
) -> Result<(), String> {
    let mut out = tokio::fs::File::create(path)
        .await
        .map_err(|e| format!("无法暂存上传的文件：{e}"))?;
    loop {
        let Ok(next) = tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, part.chunk()).await else {
            return Err(format!("上传中断：{UPLOAD_IDLE_TIMEOUT:?} 内没有收到数据"));
        };
        match next {
            Ok(Some(chunk)) => {
                staging.bytes += chunk.len() as u64;
                if staging.bytes > limit {
                    return Err(format!("文件太大：本单位一次最多发送 {limit} 字节。"));
                }
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                    .await
                    .map_err(|e| format!("无法暂存上传的文件：{e}"))?;
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("上传中断：{e}")),
        }
    }
}

/// Longest text field of an upload form (a title is 160 characters, a
/// note a few hundred).
const MAX_FIELD_BYTES: usize = 16 * 1024;

/// A text field of a multipart form, read only up to `max` bytes: longer
/// is refused, having read no more than that. The reason in plain words.
async fn small_field(
    part: &mut axum::extract::multipart::Field<'_>,
    max: usize,
) -> Result<String, String> {
    let mut value = Vec::new();
    loop {
        match tokio::time::timeout(UPLOAD_IDLE_TIMEOUT, part.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                if value.len() + chunk.len() > max {
                    return Err(format!(
                        "表单中“{}”一栏太长（最多 {max} 字节）。",
                        part.name().unwrap_or_default()
                    ));
                }
                value.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => return Err(format!("上传中断或格式不对：{e}")),
            Err(_) => return Err(format!("上传中断：{UPLOAD_IDLE_TIMEOUT:?} 内没有收到数据")),
        }
    }
    String::from_utf8(value).map_err(|_| "表单的文字不是 UTF-8 编码。".to_owned())
}

/// Ids typed into the form, separated by commas or spaces.
fn typed_names(s: &str) -> Vec<String> {
    s.split([',', '，', ' ', '、'])
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

/// POST /compose: the same path as a folder drop from there on — a claim
/// in the spool (the uploads moved in, durable), then seal and upload.
async fn compose(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    form: axum::extract::Multipart,
) -> Response {
    let mut staging = match Staging::new(&web).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut view = pages::ComposeView::default();
    let read = read_upload(&web, &headers, form, &mut staging, |name, value| {
        view.take_field(name, value)
    })
    .await;
    let (user, csrf, problem) = match read {
        Ok(read) => read,
        Err(refused) => return refused,
    };
    let mut to = view.to.clone();
    to.extend(typed_names(&view.to_more));
    let mut cc = view.cc.clone();
    cc.extend(typed_names(&view.cc_more));
    let problem = match problem {
        Some(p) => Some(p),
        None => compose_problem(&web, &to, &cc, staging.has_main).await,
    };
    // The 公文要素 and the 文种, checked against the files chosen.
    let attachments = staging
        .files
        .len()
        .saturating_sub(usize::from(staging.has_main));
    let elements = view.elements().and_then(|e| {
        e.check(&view.doc_type, attachments, true)?;
        Ok(e)
    });
    let elements = match (problem, elements) {
        (Some(why), _) | (None, Err(why)) => {
            return compose_again(&web, &user, &csrf, &view, &why).await;
        }
        (None, Ok(e)) => e,
    };
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|t| !t.is_empty());
    let req = crate::outgoing::outbox::SendRequest {
        files: staging.files.clone(),
        to,
        cc,
        title: opt(&view.title),
        doc_number: opt(&view.doc_number),
        doc_type: opt(&view.doc_type),
        urgency: opt(&view.urgency),
        deadline: opt(&view.deadline()),
        note: opt(&view.note),
        operator: opt(&view.operator).or_else(|| Some(user.display_name.clone())),
        phone: opt(&view.phone),
        reply: opt(&view.reply),
        reply_by: opt(&view.reply_by()),
        elements,
        ..Default::default()
    };
    match web.parts.clerk().send(req, true).await {
        Ok(doc_id) => {
            info!(doc = %doc_id, "composed by {} in the console", user.name);
            // Sent again after a return: the returned one is dealt with.
            if let Ok(old) = DocId::parse(view.resend_of.trim())
                && let Err(e) = web.parts.store().run(move |s| s.close_returns(old)).await
            {
                warn!("could not note that {old} was sent again as {doc_id}: {e}");
            }
            Redirect::to(&format!("/sent/{doc_id}")).into_response()
        }
        Err(why) => compose_again(&web, &user, &csrf, &view, &why).await,
    }
}

/// What keeps a composed document from going, in plain words: no main
/// recipient, no main text, or a recipient the hub does not know or that
/// cannot receive.
async fn compose_problem(
    web: &Web,
    to: &[String],
    cc: &[String],
    has_main: bool,
) -> Option<String> {
    if to.is_empty() {
        return Some("请至少选一个主送单位。".to_owned());
    }
    if !has_main {
        return Some("请选择正文文件。".to_owned());
    }
    recipients_problem(web, to, cc).await
}

/// A recipient the hub does not know or that cannot receive, in plain
/// words; none when all can (or the directory is not known yet: the hub
/// then decides).
async fn recipients_problem(web: &Web, to: &[String], cc: &[String]) -> Option<String> {
    if to.is_empty() {
        return Some("请至少填一个主送单位。".to_owned());
    }
    // A unit that joined since the directory was read is not refused.
    if let Some(dir) = web.parts.known().get()
        && to.iter().chain(cc).any(|n| !dir.knows(n))
        && web.parts.clerk().connected()
    {
        let _ = web
            .parts
            .known()
            .refresh(web.parts.link(), web.parts.identity())
            .await;
    }
    let dir = web.parts.known().get()?;
    to.iter().chain(cc).find_map(|n| {
        if !dir.knows(n) {
            Some(format!(
                "交换中心不认识收文单位 {n}。请检查单位编号（见“拟稿发文”中的单位列表）。"
            ))
        } else if dir.is_revoked(n) {
            Some(format!(
                "{}（{n}）的证书已被吊销，不能收文。请去掉这个单位。",
                dir.name_of(&gongwen_common::NodeId::parse_address(n).ok()?)
            ))
        } else {
            None
        }
    })
}

async fn compose_again(
    web: &Web,
    user: &User,
    csrf: &str,
    view: &pages::ComposeView,
    why: &str,
) -> Response {
    let dir = web.parts.known().get();
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        pages::compose(
            &web.frame(user, csrf).await,
            dir.as_deref(),
            web.parts.identity().node_id(),
            view,
            Some(why),
            web.parts.identity().config().max_document_size,
        ),
    )
        .into_response()
}

impl Web {
    fn status(&self) -> pages::StatusView {
        use crate::link::state::LinkState;
        let now_ms = self.parts.identity().now_ms();
        let (link, connected, offset) = match &*self.facts.link.borrow() {
            LinkState::Starting => ("正在连接".to_owned(), false, None),
            LinkState::Connected {
                hub,
                addr,
                since_ms,
                clock_offset_ms,
            } => (
                format!("已连接：{hub} {addr}，自 {}", pages::beijing(*since_ms)),
                true,
                Some(*clock_offset_ms),
            ),
            LinkState::Disconnected { error, retry_in } => (
                format!(
                    "未连接：{}；{:.0} 秒后重试",
                    error.chinese(),
                    retry_in.as_secs_f64().ceil()
                ),
                false,
                None,
            ),
        };
        let not_after_ms = (self.facts.cert_not_after.unix_timestamp_nanos() / 1_000_000) as i64;
        let next = self
            .parts
            .identity()
            .trust()
            .crl_next_update()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64);
        pages::StatusView {
            unit: format!("{}（编号 {}）", self.facts.label, self.facts.id),
            link,
            connected,
            cert_not_after_ms: not_after_ms,
            cert_days_left: (not_after_ms - now_ms).div_euclid(86_400_000),
            crl_next_update_ms: next,
            crl_stale: next.is_some_and(|t| t < now_ms),
            clock_offset_ms: offset,
        }
    }
}

async fn status_page(State(web): State<Arc<Web>>, Page { user, csrf }: Page) -> Response {
    pages::status(&web.frame(&user, &csrf).await, &web.status()).into_response()
}

async fn api_status(State(web): State<Arc<Web>>, _: Caller) -> Response {
    let v = web.status();
    let rfc = |ms: i64| {
        time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .map(gongwen_common::timefmt::rfc3339)
            .ok()
    };
    axum::Json(serde_json::json!({
        "connected": v.connected,
        "link": v.link,
        "certificate_not_after": rfc(v.cert_not_after_ms),
        "certificate_days_left": v.cert_days_left,
        "crl_next_update": v.crl_next_update_ms.and_then(rfc),
        "crl_stale": v.crl_stale,
        "clock_offset_ms": v.clock_offset_ms,
    }))
    .into_response()
}

fn csv_download(name: &str, body: Vec<u8>) -> Response {
    file_download(name, "text/csv; charset=utf-8", body)
}

/// `body` as a download named `name`.
fn file_download(name: &str, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&attachment(name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// `Content-Disposition` for a download: always an attachment, with the
/// name in RFC 6266/5987 form (`filename*`) and an ASCII fallback.
pub fn attachment(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "attachment; filename=\"{fallback}\"; filename*=UTF-8''{}",
        pages::percent(name)
    )
}

async fn download(
    State(web): State<Arc<Web>>,
    _: Page,
    Path((doc_id, name)): Path<(String, String)>,
) -> Response {
    let (rec, sealed) = match received(&web, &doc_id).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // Only a name the signed header lists; never a path built from input.
    let listed = sealed
        .as_ref()
        .is_some_and(|s| s.meta().files.iter().any(|f| f.name == name));
    if !listed || rec.state == ReceivedState::Quarantined {
        return (
            StatusCode::NOT_FOUND,
            pages::message(None, "没有这个文件 (404)", "这份公文没有这个文件。"),
        )
            .into_response();
    }
    let path = crate::incoming::clerk::document_dir(web.parts.identity(), &rec).join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) => return server_error(format!("{}: {e}", path.display())),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let stream = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&attachment(&name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    r
}

fn api_error(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": text }))).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct ApiAct {
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: String,
}

async fn api_act(web: &Web, user: User, doc_id: &str, kind: ReceiptKind, body: ApiAct) -> Response {
    let Ok(doc) = DocId::parse(doc_id) else {
        return api_error(StatusCode::NOT_FOUND, "no such document");
    };
    let detail = match kind {
        ReceiptKind::Rejected => body.reason,
        _ => body.by.unwrap_or_else(|| user.display_name.clone()),
    };
    match answer(web, doc, kind, detail, &user.name).await {
        Ok(rec) => axum::Json(serde_json::json!({
            "doc_id": rec.doc_id,
            "state": rec.state.as_str(),
            "submitted": web.parts.link().connection().is_some(),
        }))
        .into_response(),
        Err(text) => api_error(StatusCode::CONFLICT, &text),
    }
}

async fn api_ack(
    State(web): State<Arc<Web>>,
    Acting(user): Acting,
    Path(doc_id): Path<String>,
    body: Option<axum::Json<ApiAct>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_default();
    api_act(&web, user, &doc_id, ReceiptKind::Acknowledged, body).await
}

async fn api_reject(
    State(web): State<Arc<Web>>,
    Acting(user): Acting,
    Path(doc_id): Path<String>,
    body: Option<axum::Json<ApiAct>>,
) -> Response {
    let body = body.map(|b| b.0).unwrap_or_default();
    api_act(&web, user, &doc_id, ReceiptKind::Rejected, body).await
}

#[derive(Debug, Default, Deserialize)]
struct ApiInboxQuery {
    #[serde(default)]
    pending: bool,
    page: Option<usize>,
}

/// `GET /api/v1/inbox`: the rows `gongwen-agent inbox --json` prints, a
/// page at a time, newest first.
async fn api_inbox(
    State(web): State<Arc<Web>>,
    _: Caller,
    Query(q): Query<ApiInboxQuery>,
) -> Response {
    let filter = if q.pending {
        ReceivedFilter::pending()
    } else {
        ReceivedFilter::default()
    };
    let offset = q.page.unwrap_or(1).max(1).saturating_sub(1) * PAGE_SIZE;
    match web
        .parts
        .store()
        .run(move |s| s.received_page(&filter, offset, PAGE_SIZE))
        .await
    {
        Ok((rows, _)) => {
            axum::Json(crate::incoming::clerk::inbox_rows(rows, false)).into_response()
        }
        Err(e) => server_error(e),
    }
}

impl HasCsrf for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl HasCsrf for AckForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl HasCsrf for RejectForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl HasCsrf for RecallForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_are_attachments_with_the_chinese_name_encoded() {
        let d = attachment("正文.pdf");
        assert!(d.starts_with("attachment; "), "{d}");
        assert!(d.contains("filename*=UTF-8''%E6%AD%A3%E6%96%87.pdf"), "{d}");
        assert!(attachment("a\"b.html").contains("filename=\"a_b.html\""));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; gongwen_session=xyz; b=2"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
