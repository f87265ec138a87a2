//! The local status page: one server-rendered HTML page at `GET /` (and `/status`) with the open
//! incidents (Acknowledge/Resolve buttons), who is on call now and next, paging, modem and email
//! health, and the recent pages. It needs no internet: no external assets, no script.
//!
//! This module owns the page's HTTP handlers, its login and CSRF checks ([`auth`]) and its markup
//! ([`view`]). It does not own any state: it reads through the same [`Intake`] handle as the JSON
//! API and makes the same store transitions as `POST /v1/incidents/:id/acknowledge`.
//!
//! Auth follows the API: reads are open; writes need the `[http]` token when one is configured.
//! A browser logs in by posting the token to `/login`, which sets an `HttpOnly; SameSite=Strict;
//! Path=/` cookie holding a value derived from the token (never the token). The cookie is not
//! `Secure` because the daemon serves plain HTTP on loopback; put a TLS proxy in front to expose
//! the page, and it will still work. Every POST carries a CSRF token and is refused when the
//! browser reports another origin. Every answer carries a strict Content-Security-Policy.

pub mod auth;
pub mod throttle;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use crate::incident::{Actor, IncidentId};
use crate::intake::Intake;
use crate::store::{outbox, ListFilter};
use view::{ModemView, OnCallRow, Snapshot, Viewer};

/// The actor recorded for acknowledgements and resolutions made on the page.
pub const ACTOR: &str = "status-page";
/// The path recorded with them.
pub const VIA: &str = "web";

/// How many open incidents and recent pages the page lists.
const INCIDENT_LIMIT: usize = 200;
const PAGE_LIMIT: usize = 20;
/// Form bodies are a CSRF token and maybe a token: a few hundred bytes.
const MAX_FORM_BYTES: usize = 4096;
/// How long a login lasts: the cookie's `Max-Age`, and checked on every request.
const SESSION_MAX_AGE_SECONDS: i64 = 12 * 3600;

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
    frame-ancestors 'none'; base-uri 'none'";

#[derive(Clone)]
struct PageState {
    intake: Intake,
    /// Random per run; keys the CSRF tokens.
    run_key: Arc<[u8; 32]>,
    /// Wrong logins per source address. Only the login handler touches it, for a moment and
    /// never across an await.
    logins: Arc<std::sync::Mutex<throttle::LoginThrottle>>,
}

/// The status page routes (`/`, `/status`, `/login`, `/logout`, `/ui/incidents/:id/...`), to be
/// merged into the API router. Draws a random per-run CSRF key from the OS.
///
/// # Panics
/// When the OS has no random source (`getrandom` fails), which Linux never does after boot.
pub fn router(intake: Intake) -> Router {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).expect("the OS random source works");
    let state = PageState {
        intake,
        run_key: Arc::new(key),
        logins: Arc::default(),
    };
    Router::new()
        .route(
            "/",
            get(show).layer(axum::middleware::from_fn(super::background::behind_paging)),
        )
        .route(
            "/status",
            get(show).layer(axum::middleware::from_fn(super::background::behind_paging)),
        )
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/ui/incidents/:id/acknowledge", post(acknowledge))
        .route("/ui/incidents/:id/resolve", post(resolve))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

impl PageState {
    /// The session this request holds: `Some("")` when no token is configured (everyone may
    /// act), `Some(value)` for a valid login cookie, `None` otherwise.
    fn session(&self, headers: &HeaderMap) -> Option<String> {
        let Some(token) = self.intake.current_token() else {
            return Some(String::new());
        };
        let now = crate::clock::system_now().timestamp();
        auth::cookie(headers, auth::SESSION_COOKIE)
            .filter(|c| auth::session_valid(token.expose(), c, now, SESSION_MAX_AGE_SECONDS))
            .map(str::to_string)
    }

    fn csrf(&self, session: &str) -> String {
        auth::csrf_for(&self.run_key[..], session)
    }

    /// Refuses a POST (403 page) that is cross-site or lacks the right CSRF token for `session`.
    fn check_post(
        &self,
        headers: &HeaderMap,
        session: &str,
        presented: Option<&str>,
    ) -> Result<(), Box<Response>> {
        if let Some(why) = auth::cross_site(headers) {
            return Err(Box::new(forbidden(why)));
        }
        // Without a token the CSRF token is the same for every visitor, and a page that DNS
        // rebinding made same-origin can read it off the status page: such a page must not post.
        // (With a token, the session cookie is bound to the name the person logged in under.)
        if self.intake.current_token().is_none() {
            if let Some(why) = crate::api::guard::rebound(headers) {
                return Err(Box::new(forbidden(why)));
            }
        }
        let ok = presented.is_some_and(|p| auth::same(p, &self.csrf(session)));
        if !ok {
            return Err(Box::new(forbidden(
                "the form's CSRF token is missing or stale: reload the status page and try again",
            )));
        }
        Ok(())
    }

    async fn snapshot(&self) -> Snapshot {
        let intake = &self.intake;
        let config = intake.config.borrow().clone();
        let now = intake.store.now();
        let incidents = intake
            .store
            .incidents(ListFilter::Open, INCIDENT_LIMIT)
            .await;
        let rt = crate::api::oncall::current_overrides(intake)
            .await
            .unwrap_or_default();
        let oncall = config
            .schedules
            .iter()
            .map(|s| {
                let (now, next) = crate::api::oncall::now_and_next(s, &rt, now);
                OnCallRow {
                    schedule: s.name.clone(),
                    now,
                    next,
                }
            })
            .collect();
        // The driver's last known readings: asking the modem here would queue AT commands in
        // front of pages on every page load.
        let modem = match &intake.modem {
            None => ModemView::Disabled,
            Some(h) => ModemView::Enabled {
                health: h.borrow().clone(),
            },
        };
        let pages = intake
            .store
            .read(|c, _| Ok(outbox::recent(c, PAGE_LIMIT)?))
            .await;
        let nobody_paged = intake
            .store
            .read(|c, _| Ok(crate::store::pages::nobody_reached(c)?))
            .await;
        Snapshot {
            nobody_paged,
            now,
            incidents,
            oncall,
            modem,
            email_enabled: config.email.enabled,
            paging: intake.paging.as_ref().map(|p| p.borrow().clone()),
            pages,
            standby: intake.health.standby.as_ref().map(|s| s.borrow().clone()),
        }
    }

    async fn render(&self, headers: &HeaderMap, failed_login: bool) -> Response {
        let session = self.session(headers);
        let (viewer, csrf) = match &session {
            Some(s) if self.intake.current_token().is_none() => (Viewer::Open, self.csrf(s)),
            Some(s) => (Viewer::LoggedIn, self.csrf(s)),
            None => (
                Viewer::Anonymous {
                    failed: failed_login,
                },
                self.csrf(""),
            ),
        };
        let snapshot = self.snapshot().await;
        let status = if failed_login {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        (
            status,
            Html(view::page(&snapshot, &viewer, &csrf).into_string()),
        )
            .into_response()
    }
}

fn forbidden(why: &str) -> Response {
    tracing::warn!(reason = why, "status page refused a form post");
    (
        StatusCode::FORBIDDEN,
        Html(view::message("Refused", &format!("Refused: {why}.")).into_string()),
    )
        .into_response()
}

/// Where to send a browser after a form post: back to the page (303 turns the POST into a GET).
fn back() -> Response {
    Redirect::to("/").into_response()
}

async fn show(State(st): State<PageState>, headers: HeaderMap) -> Response {
    st.render(&headers, false).await
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    csrf: Option<String>,
    token: Option<String>,
}

async fn login(
    State(st): State<PageState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    if let Err(r) = st.check_post(&headers, "", f.csrf.as_deref()) {
        return *r;
    }
    let Some(token) = st.intake.current_token() else {
        return back();
    };
    // Without the peer's address (only when served by something other than api::server)
    // every login shares one record: stricter, never looser.
    let source = peer.map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(a)| a.ip());
    let now = tokio::time::Instant::now();
    let locked = st
        .logins
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .check(source, now);
    if let Err(wait) = locked {
        return too_many_logins(wait);
    }
    if !f
        .token
        .as_deref()
        .is_some_and(|p| auth::same(p, token.expose()))
    {
        let backoff = st
            .logins
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .failed(source, now);
        tracing::warn!(source = %source, backoff = ?backoff, "status page login with a wrong token");
        return st.render(&HeaderMap::new(), true).await;
    }
    st.logins
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .succeeded(source);
    let now = crate::clock::system_now().timestamp();
    back_setting_session(
        &auth::session_for(token.expose(), now),
        SESSION_MAX_AGE_SECONDS,
    )
}

/// 429 for a login during its source's backoff; the token was not checked.
fn too_many_logins(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        Html(
            view::message(
                "Too many attempts",
                &format!("Too many wrong tokens from this address: try again in {secs} s."),
            )
            .into_string(),
        ),
    )
        .into_response();
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&secs.to_string()).expect("digits are a valid header"),
    );
    r
}

/// [`back`] with the session cookie set to `value` for `max_age` seconds (0 clears it).
fn back_setting_session(value: &str, max_age: i64) -> Response {
    let cookie = format!(
        "{}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}",
        auth::SESSION_COOKIE,
    );
    let mut r = back();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("a hex cookie is a valid header"),
    );
    r
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn logout(
    State(st): State<PageState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    let session = st.session(&headers).unwrap_or_default();
    if let Err(r) = st.check_post(&headers, &session, f.csrf.as_deref()) {
        return *r;
    }
    back_setting_session("", 0)
}

async fn transition(
    st: PageState,
    headers: HeaderMap,
    id: String,
    csrf: Option<String>,
    resolve: bool,
) -> Response {
    // Not logged in: to the login form (the page shows it), not an error.
    let Some(session) = st.session(&headers) else {
        return back();
    };
    if let Err(r) = st.check_post(&headers, &session, csrf.as_deref()) {
        return *r;
    }
    let Ok(id) = id.parse::<IncidentId>() else {
        return (
            StatusCode::BAD_REQUEST,
            Html(view::message("Bad request", "That is not an incident id.").into_string()),
        )
            .into_response();
    };
    let actor = Actor::new(ACTOR, VIA);
    let result = if resolve {
        st.intake.store.resolve(id, actor).await
    } else {
        st.intake.store.acknowledge(id, actor).await
    };
    match result {
        Ok(_) => back(),
        Err(crate::store::StoreError::NotFound(_)) => (
            StatusCode::NOT_FOUND,
            Html(
                view::message("Not found", &format!("Incident #{id} does not exist."))
                    .into_string(),
            ),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(incident_id = id, error = %e, "status page could not store a transition");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Html(
                    view::message("Not stored", &format!("Not stored, try again: {e}"))
                        .into_string(),
                ),
            )
                .into_response()
        }
    }
}

async fn acknowledge(
    State(st): State<PageState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    transition(st, headers, id, f.csrf, false).await
}

async fn resolve(
    State(st): State<PageState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CsrfForm>,
) -> Response {
    transition(st, headers, id, f.csrf, true).await
}
