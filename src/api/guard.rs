//! The cross-site write guard: one middleware in front of every JSON API route, so that a web
//! page open in someone's browser cannot silence, acknowledge or resolve anything.
//!
//! A browser will send a "simple" request to any origin without asking first: a form post, a
//! `fetch(.., {mode: "no-cors"})` with `Content-Type: text/plain`, an `<img>` GET. It cannot add
//! an `Authorization` header or a JSON content type to such a request without a CORS preflight,
//! and pagerbox never answers a preflight. So a state-changing request is let through only when:
//!
//! 1. it presents the write token (or an `[[opsgenie.keys]]` key) in `Authorization`, which no
//!    cross-site page can send; or
//! 2. the browser does not say it came from elsewhere: `Sec-Fetch-Site` is `same-origin` or
//!    `none` when present, and `Origin` (when present, and `Sec-Fetch-Site` is not) names this
//!    host (`Origin: null`, a sandboxed or opaque page, is foreign); and its body, if it has one,
//!    is declared JSON (`application/json` or `application/<something>+json`), which no simple
//!    request can declare.
//!
//! A page that says it is our own origin passes only when it reached us by an address
//! (`127.0.0.1`, `[::1]`, a LAN address) or `localhost`, not by a DNS name: DNS rebinding lets a
//! page on `evil.example` point that name at this box, after which its requests are
//! same-origin and `Origin` equals `Host`. Without the token, a browser write under a name is
//! refused; with it, the token decides.
//!
//! Real senders (Alertmanager, Grafana, PagerDuty and Opsgenie clients, curl, the CLI) send no
//! `Origin` or `Sec-Fetch-*` header and declare their JSON, so they pass unchanged.
//!
//! "State-changing" is every method but GET/HEAD/OPTIONS, plus the GET heartbeat pings (a missed
//! heartbeat is an alert, so a forged ping hides one). Reads are not guarded: a cross-site page
//! cannot read the answer. The status page's own forms are not behind this guard: they carry a
//! CSRF token and are checked by [`crate::api::status_page::auth`].

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::intake::formats::opsgenie as og;
use crate::intake::{secret_matches, Intake};

/// Why the guard refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The browser says the request came from another site or origin.
    CrossSite(&'static str),
    /// The request has a body that is not declared JSON.
    NotJson,
}

impl Refusal {
    fn status(self) -> StatusCode {
        match self {
            Refusal::CrossSite(_) => StatusCode::FORBIDDEN,
            Refusal::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }

    fn message(self) -> &'static str {
        match self {
            Refusal::CrossSite(why) => why,
            Refusal::NotJson => {
                "send the body with Content-Type: application/json \
                 (curl: -H 'Content-Type: application/json'), or present the token"
            }
        }
    }
}

/// True when the request can change state (see the module doc).
pub fn changes_state(method: &Method, path: &str) -> bool {
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let ping = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("/ping"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
    };
    ping("/v1/heartbeats/") || ping("/v2/heartbeats/")
}

/// Why the browser's own headers say the request is not from a page of this origin, if they do.
/// `Sec-Fetch-Site` cannot be set by a script and decides when present; otherwise `Origin`.
pub fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return (site != "same-origin" && site != "none").then_some(
            "refused: the browser says this request came from another site (Sec-Fetch-Site); \
             present the token to write from elsewhere",
        );
    }
    let origin = header("origin")?;
    let host = header("host").unwrap_or("");
    let ours = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
    (!ours).then_some(
        "refused: the request came from another origin (Origin); \
         present the token to write from elsewhere",
    )
}

/// Why a write from a browser without the token is refused although it says it is same-origin:
/// the page reached this box by a DNS name, which another site can point here (DNS rebinding).
/// `None` when it did not come from a page, or came by an address or `localhost`. The status
/// page's forms, when no token is configured, answer to this rule too.
pub fn rebound(headers: &HeaderMap) -> Option<&'static str> {
    (from_a_page(headers) && !host_is_an_address(headers)).then_some(
        "refused: a web page reached this box by a DNS name, which another site can point \
         here (DNS rebinding); open it by its address or present the token",
    )
}

/// Why a GET (a heartbeat ping) from a browser is refused without the token, if it is. Over plain
/// HTTP to an address other than localhost a browser sends neither `Origin` nor `Sec-Fetch-*`
/// with an `<img src>`, so any web page could keep a dead job's heartbeat alive; but every
/// browser says `Mozilla/` in its `User-Agent`, and the cron tools pings come from (curl, wget)
/// do not. Tools that borrow `Mozilla/` mark themselves: PowerShell's `Invoke-WebRequest` adds
/// `PowerShell/`, monitoring agents `(compatible; ...)`; no current browser does either. A URL
/// the person typed (`Sec-Fetch-Site: none`) is their own.
fn browser_get(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    let browser = header("user-agent").is_some_and(|ua| {
        ua.contains("Mozilla/") && !ua.contains("PowerShell/") && !ua.contains("compatible;")
    });
    (browser && header("sec-fetch-site") != Some("none")).then_some(
        "refused: a browser's GET cannot ping a heartbeat without the token (a web page could \
         keep a dead job looking alive); ping with curl or wget, or present the token",
    )
}

/// True when a browser sent the request from a page (a script or a form): it names an origin,
/// or says it came from one. A typed URL or bookmark (`Sec-Fetch-Site: none`) is the person's
/// own doing, and non-browser clients send neither header.
fn from_a_page(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site != "none",
        None => headers.contains_key(header::ORIGIN),
    }
}

/// True when `Host` names this box by an IP address or `localhost`, which no other site's DNS
/// can point elsewhere.
fn host_is_an_address(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // `[::1]:8080`, `[::1]`, `127.0.0.1:8080`, `localhost:8080`.
    let name = match host.strip_prefix('[') {
        Some(v6) => {
            return v6
                .split(']')
                .next()
                .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
}

/// True when the request's `Content-Type` is JSON (`application/json`, or a vendor type such as
/// `application/vnd.example+json`), parameters such as `charset` allowed.
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json") && !sub.contains('/'))
}

/// True when the request declares a body (a length above zero, or a chunked body).
fn has_body(headers: &HeaderMap) -> bool {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim() != "0");
    length.unwrap_or_else(|| headers.contains_key(header::TRANSFER_ENCODING))
}

/// The guard's decision for one request, given whether it presented a valid credential. Pure:
/// no I/O, so every case is a unit test.
pub fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    credential: bool,
) -> Result<(), Refusal> {
    if credential || !changes_state(method, path) {
        return Ok(());
    }
    if let Some(why) = cross_site(headers) {
        return Err(Refusal::CrossSite(why));
    }
    if let Some(why) = rebound(headers) {
        return Err(Refusal::CrossSite(why));
    }
    if let Some(why) = browser_get(method, headers) {
        return Err(Refusal::CrossSite(why));
    }
    match headers.get(header::CONTENT_TYPE) {
        // A type is declared even on an empty body: a browser form always declares one.
        Some(ct) if !ct.to_str().is_ok_and(is_json) => Err(Refusal::NotJson),
        Some(_) => Ok(()),
        None if has_body(headers) => Err(Refusal::NotJson),
        None => Ok(()),
    }
}

/// True when `Authorization` carries the write token (as `Bearer` or `GenieKey`) or an
/// `[[opsgenie.keys]]` key. With no token and no keys configured nothing counts as a credential:
/// then the guard is the only thing between a web page and the pager.
pub fn credential(intake: &Intake, headers: &HeaderMap) -> bool {
    let Some(authorization) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let presented =
        og::genie_key(authorization).or_else(|| super::respond::bearer_token(authorization));
    let Some(presented) = presented else {
        return false;
    };
    if intake
        .current_token()
        .is_some_and(|t| secret_matches(presented, &t))
    {
        return true;
    }
    og::genie_key(authorization).is_some_and(|k| {
        intake
            .config
            .borrow()
            .opsgenie
            .keys
            .iter()
            .any(|c| secret_matches(k, &c.key))
    })
}

/// `path` with the secret a Splunk On-Call sender puts in it (the write token or the
/// `[victorops]` key, as its first segment after `.../alert/`) masked, for the log.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    const KEYED: &str = "/integrations/generic/20131114/alert/";
    match path.strip_prefix(KEYED) {
        Some(rest) => {
            let tail = rest.split_once('/').map_or("", |(_, t)| t);
            let sep = if rest.contains('/') { "/" } else { "" };
            format!("{KEYED}<key>{sep}{tail}").into()
        }
        None => path.into(),
    }
}

/// The middleware: refuses what [`check`] refuses with a JSON error, counts it and logs it (the
/// operator should know that a page tried to write), and passes everything else on untouched.
pub async fn refuse_cross_site(
    State(intake): State<Intake>,
    request: Request,
    next: Next,
) -> Response {
    let verdict = check(
        request.method(),
        request.uri().path(),
        request.headers(),
        credential(&intake, request.headers()),
    );
    match verdict {
        Ok(()) => next.run(request).await,
        Err(refusal) => {
            tracing::warn!(
                method = %request.method(),
                path = &*loggable_path(request.uri().path()),
                reason = ?refusal,
                "refused a write that a web page could have forged"
            );
            super::respond::error(refusal.status(), refusal.message(), vec![])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[test]
    fn the_key_in_a_splunk_on_call_path_is_masked_for_the_log() {
        let base = "/integrations/generic/20131114/alert/";
        assert_eq!(
            loggable_path(&format!("{base}s3cr3tTOKEN/default")),
            format!("{base}<key>/default")
        );
        assert_eq!(
            loggable_path(&format!("{base}s3cr3tTOKEN")),
            format!("{base}<key>")
        );
        assert_eq!(loggable_path("/v1/alerts"), "/v1/alerts");
    }

    #[test]
    fn state_changing_requests_are_writes_and_heartbeat_pings() {
        assert!(changes_state(&Method::POST, "/v1/alerts"));
        assert!(changes_state(&Method::DELETE, "/v1/silences/3"));
        assert!(changes_state(&Method::PUT, "/v2/heartbeats/x/ping"));
        assert!(changes_state(&Method::GET, "/v1/heartbeats/backup/ping"));
        assert!(changes_state(&Method::HEAD, "/v2/heartbeats/backup/ping"));
        assert!(!changes_state(&Method::GET, "/v1/heartbeats/backup"));
        assert!(!changes_state(&Method::GET, "/v1/heartbeats"));
        assert!(!changes_state(&Method::GET, "/v1/incidents/4"));
        assert!(!changes_state(&Method::GET, "/v1/heartbeats//ping"));
    }

    #[test]
    fn a_browsers_get_ping_needs_the_token_and_cron_tools_do_not() {
        let get = Method::GET;
        let ping = "/v1/heartbeats/backup/ping";
        let img = headers(&[
            ("host", "192.168.1.20:8080"),
            ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"),
            ("accept", "image/avif,image/webp,*/*"),
        ]);
        assert!(check(&get, ping, &img, false).is_err());
        assert!(check(&get, ping, &img, true).is_ok(), "with the token");
        for tool in [
            "curl/8.5.0",
            "Wget/1.21.3",
            "Go-http-client/1.1",
            "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.19041.1",
            "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.19045; en-US) PowerShell/7.4.1",
            "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        ] {
            let h = headers(&[("host", "192.168.1.20:8080"), ("user-agent", tool)]);
            assert!(check(&get, ping, &h, false).is_ok(), "{tool}");
        }
        let typed = headers(&[
            ("host", "127.0.0.1:8080"),
            ("user-agent", "Mozilla/5.0"),
            ("sec-fetch-site", "none"),
        ]);
        assert!(check(&get, ping, &typed, false).is_ok(), "a typed URL");
        assert!(
            check(&get, "/v1/incidents", &img, false).is_ok(),
            "reads are not writes"
        );
    }

    #[test]
    fn json_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.pagerduty+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/plain; application/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
            "text/json+json/x",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn what_real_senders_send_passes() {
        // Alertmanager, the PagerDuty and Opsgenie clients (tests/fixtures/*/*.headers).
        let am = headers(&[
            ("host", "127.0.0.1:18080"),
            ("user-agent", "Alertmanager/0.25.0"),
            ("content-length", "990"),
            JSON,
        ]);
        assert_eq!(check(&Method::POST, "/v1/alerts", &am, false), Ok(()));
        // `curl -X POST url` and the CLI's body-less acknowledge: no body, no type.
        let bare = headers(&[("host", "127.0.0.1:8080"), ("content-length", "0")]);
        assert_eq!(
            check(&Method::POST, "/v1/incidents/3/acknowledge", &bare, false),
            Ok(())
        );
        assert_eq!(
            check(&Method::POST, "/v1/heartbeats/x", &HeaderMap::new(), false),
            Ok(())
        );
        // A cron `curl http://box/v1/heartbeats/x/ping`.
        assert_eq!(
            check(
                &Method::GET,
                "/v1/heartbeats/x/ping",
                &HeaderMap::new(),
                false
            ),
            Ok(())
        );
        // Our own origin, as a same-origin script would send.
        let same = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
            JSON,
        ]);
        assert_eq!(check(&Method::POST, "/v1/silences", &same, false), Ok(()));
    }

    #[test]
    fn what_a_foreign_page_can_send_is_refused() {
        // fetch(url, {mode: "no-cors", body, headers: {"Content-Type": "text/plain"}}) from
        // another loopback port: same-site, and a text body.
        let no_cors = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9999"),
            ("sec-fetch-site", "same-site"),
            ("content-type", "text/plain;charset=UTF-8"),
            ("content-length", "40"),
        ]);
        assert!(matches!(
            check(&Method::POST, "/v1/silences", &no_cors, false),
            Err(Refusal::CrossSite(_))
        ));
        // The same from an old browser that sends no Sec-Fetch-*: the Origin refuses it.
        let old = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
            ("content-type", "text/plain"),
        ]);
        assert!(matches!(
            check(&Method::POST, "/v1/silences", &old, false),
            Err(Refusal::CrossSite(_))
        ));
        // A sandboxed page's opaque origin.
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null"), JSON]);
        assert!(matches!(
            check(&Method::POST, "/v1/alerts", &null, false),
            Err(Refusal::CrossSite(_))
        ));
        // Even claiming JSON does not help when the browser says cross-site.
        let cross = headers(&[("sec-fetch-site", "cross-site"), JSON]);
        assert!(check(&Method::POST, "/v1/alerts", &cross, false).is_err());
        // <img src=".../ping">: a GET that changes state.
        let img = headers(&[
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-dest", "image"),
        ]);
        assert!(check(&Method::GET, "/v1/heartbeats/x/ping", &img, false).is_err());
        // ...but reads stay open (the page cannot read the answer).
        assert_eq!(check(&Method::GET, "/v1/incidents", &img, false), Ok(()));
    }

    #[test]
    fn a_page_that_reached_the_box_by_a_rebound_name_cannot_write_without_the_token() {
        // evil.example first served the page, then its DNS answer changed to 127.0.0.1: the
        // page's requests are same-origin, and Origin equals Host.
        let rebound = headers(&[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
            ("sec-fetch-site", "same-origin"),
            JSON,
        ]);
        assert!(matches!(
            check(&Method::POST, "/v1/silences", &rebound, false),
            Err(Refusal::CrossSite(why)) if why.contains("DNS rebinding")
        ));
        // An older browser without Sec-Fetch-*: its Origin still shows it is a page.
        let old = headers(&[
            ("host", "evil.example:8080"),
            ("origin", "http://evil.example:8080"),
            JSON,
        ]);
        assert!(check(&Method::POST, "/v1/incidents/1/acknowledge", &old, false).is_err());
        // The token lets it through; so does reaching the box by an address or localhost.
        assert_eq!(check(&Method::POST, "/v1/silences", &rebound, true), Ok(()));
        for host in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "192.168.1.20",
            "localhost:8080",
        ] {
            let mut by_address = headers(&[("sec-fetch-site", "same-origin"), JSON]);
            by_address.insert("host", HeaderValue::from_str(host).unwrap());
            let origin = format!("http://{host}");
            by_address.insert("origin", HeaderValue::from_str(&origin).unwrap());
            assert_eq!(
                check(&Method::POST, "/v1/silences", &by_address, false),
                Ok(()),
                "{host}"
            );
        }
        // Clients that are not browsers may use any name (Alertmanager's `url:`, curl).
        let am = headers(&[("host", "pagerbox.lan:8080"), JSON]);
        assert_eq!(check(&Method::POST, "/v1/alerts", &am, false), Ok(()));
    }

    #[test]
    fn a_body_that_is_not_declared_json_is_refused_without_a_credential() {
        // curl -d '...' without -H: form-urlencoded, which a browser form can also send.
        let form = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "12"),
        ]);
        assert_eq!(
            check(&Method::POST, "/v1/alerts", &form, false),
            Err(Refusal::NotJson)
        );
        // Even an empty form post declares its type.
        let empty_form = headers(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-length", "0"),
        ]);
        assert_eq!(
            check(&Method::POST, "/v1/incidents/1/resolve", &empty_form, false),
            Err(Refusal::NotJson)
        );
        let untyped = headers(&[("content-length", "12")]);
        assert_eq!(
            check(&Method::POST, "/v1/alerts", &untyped, false),
            Err(Refusal::NotJson)
        );
        let chunked = headers(&[("transfer-encoding", "chunked")]);
        assert_eq!(
            check(&Method::POST, "/v1/alerts", &chunked, false),
            Err(Refusal::NotJson)
        );
        // With the token nothing a browser decides matters: it cannot have sent it.
        assert_eq!(check(&Method::POST, "/v1/alerts", &form, true), Ok(()));
    }

    /// The real API router on a loopback port, fed with the exact bytes curl or a browser sends.
    mod through_the_router {
        use std::net::SocketAddr;
        use std::sync::Arc;

        use serde_json::Value;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        use crate::clock::SystemClock;
        use crate::config::{Config, Secret};
        use crate::intake::{Intake, IntakeParts, IntakeStats};
        use crate::store::Store;

        struct Api {
            addr: SocketAddr,
            _dir: tempfile::TempDir,
            _token: tokio::sync::watch::Sender<Option<Arc<Secret>>>,
            _config: tokio::sync::watch::Sender<Arc<Config>>,
        }

        async fn api(token: Option<&str>) -> Api {
            let dir = tempfile::tempdir().unwrap();
            let mut extra = String::new();
            if let Some(t) = token {
                let path = dir.path().join("token");
                std::fs::write(&path, t).unwrap();
                extra = format!("token_file = {:?}\n", path.display().to_string());
            }
            let text = format!(
                "[daemon]\nstate_dir = {:?}\ntime_zone = \"Europe/Berlin\"\n\
                 [http]\nlisten = \"127.0.0.1:0\"\n{extra}[modem]\nenabled = false\n",
                dir.path().display().to_string()
            );
            let config = Config::parse(&text, "test.toml", dir.path())
                .unwrap()
                .config;
            let clock = Arc::new(SystemClock);
            let store = Store::open(&config.database_path(), clock).unwrap();
            let (token_tx, token_rx) =
                tokio::sync::watch::channel(crate::intake::read_token(&config).unwrap());
            let (config_tx, config_rx) = tokio::sync::watch::channel(Arc::new(config));
            let health = crate::health::Sources {
                store: store.clone(),
                paging: None,
                modem: None,
                liveness: Default::default(),
                selftest_fault: None,
                clock: Arc::new(SystemClock),
                standby: None,
                pages_nobody: None,
            };
            let intake = Intake::from(IntakeParts {
                store,
                config: config_rx,
                token: token_rx,
                stats: Arc::new(IntakeStats::default()),
                paging: None,
                modem: None,
                metrics: crate::metrics::Metrics::new(crate::clock::system_now()),
                selftest: None,
                health,
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = crate::api::router(intake, 65536);
            tokio::spawn(async move { axum::serve(listener, app).await });
            Api {
                addr,
                _dir: dir,
                _token: token_tx,
                _config: config_tx,
            }
        }

        /// Sends one request as raw bytes (so no client adds headers of its own); returns the
        /// status and the JSON body.
        async fn send(
            api: &Api,
            method: &str,
            path: &str,
            headers: &[&str],
            body: &str,
        ) -> (u16, Value) {
            let mut s = tokio::net::TcpStream::connect(api.addr).await.unwrap();
            let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", api.addr);
            for h in headers {
                req.push_str(h);
                req.push_str("\r\n");
            }
            req.push_str(&format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            ));
            s.write_all(req.as_bytes()).await.unwrap();
            let mut answer = String::new();
            s.read_to_string(&mut answer).await.unwrap();
            let status = answer[9..12].parse().unwrap();
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
            (status, serde_json::from_str(body).unwrap_or(Value::Null))
        }

        const SILENCE: &str =
            r#"{"matchers":["severity=~.+"],"duration":"999d","comment":"pwned"}"#;

        async fn silences(api: &Api) -> usize {
            let (code, v) = send(api, "GET", "/v1/silences", &[], "").await;
            assert_eq!(code, 200, "{v}");
            v["silences"].as_array().unwrap().len()
        }

        #[tokio::test]
        async fn forged_writes_are_refused_and_change_nothing() {
            let api = api(None).await;
            let (code, v) = send(
                &api,
                "POST",
                "/v1/alerts",
                &["Content-Type: application/json"],
                r#"{"summary":"db down","severity":"critical","dedup_key":"db"}"#,
            )
            .await;
            assert_eq!(code, 202, "{v}");
            let id = v["incident_id"].as_i64().unwrap();

            // What fetch(.., {mode: "no-cors"}) with text/plain sends from another port.
            let evil = "Origin: http://127.0.0.1:1";
            let forged: [(&str, String, Vec<&str>, &str); 5] = [
                (
                    "POST",
                    "/v1/silences".into(),
                    vec![
                        evil,
                        "Sec-Fetch-Site: same-site",
                        "Content-Type: text/plain",
                    ],
                    SILENCE,
                ),
                // curl pretending to be a browser on another site, even with a JSON type.
                (
                    "POST",
                    "/v1/silences".into(),
                    vec![
                        "Origin: http://evil.example",
                        "Sec-Fetch-Site: cross-site",
                        "Content-Type: application/json",
                    ],
                    SILENCE,
                ),
                // An old browser's form post: no Sec-Fetch-*, a foreign Origin.
                (
                    "POST",
                    format!("/v1/incidents/{id}/resolve"),
                    vec![
                        "Origin: http://evil.example",
                        "Content-Type: application/x-www-form-urlencoded",
                    ],
                    "",
                ),
                // A form post with no Origin at all: its type gives it away.
                (
                    "POST",
                    format!("/v1/incidents/{id}/acknowledge"),
                    vec!["Content-Type: text/plain"],
                    "{}",
                ),
                (
                    "POST",
                    "/v2/enqueue".into(),
                    vec!["Content-Type: text/plain"],
                    r#"{"routing_key":"x","event_action":"resolve","dedup_key":"db"}"#,
                ),
            ];
            for (method, path, headers, body) in &forged {
                let (code, v) = send(&api, method, path, headers, body).await;
                assert!(code == 403 || code == 415, "{method} {path}: {code} {v}");
                assert!(v["error"].as_str().is_some(), "{v}");
            }
            assert_eq!(silences(&api).await, 0);
            let (_, v) = send(&api, "GET", &format!("/v1/incidents/{id}"), &[], "").await;
            assert_eq!(v["incident"]["status"], "triggered", "{v}");

            // curl -H 'Content-Type: application/json' still works, with or without a body.
            let (code, v) = send(
                &api,
                "POST",
                "/v1/silences",
                &["Content-Type: application/json", "User-Agent: curl/7.88.1"],
                r#"{"service":"db","duration":"1h","comment":"maintenance"}"#,
            )
            .await;
            assert_eq!(code, 201, "{v}");
            let (code, v) = send(
                &api,
                "POST",
                &format!("/v1/incidents/{id}/acknowledge"),
                &[],
                "",
            )
            .await;
            assert_eq!(code, 200, "{v}");
            assert_eq!(v["status"], "acknowledged", "{v}");
        }

        #[tokio::test]
        async fn reads_without_the_token_have_numbers_and_addresses_masked() {
            let api = api(Some("tok-123")).await;
            let body = r#"{"service":"db","duration":"1h","comment":"call +4915112345678",
                "created_by":"alice.smith@example.org"}"#;
            let auth = "Authorization: Bearer tok-123";
            let json = "Content-Type: application/json";
            let (code, v) = send(&api, "POST", "/v1/silences", &[auth, json], body).await;
            assert_eq!(code, 201, "{v}");
            let (_, open) = send(&api, "GET", "/v1/silences", &[], "").await;
            let s = &open["silences"][0];
            assert_eq!(s["comment"], "call +**********678", "{open}");
            assert_eq!(s["created_by"], "a***@example.org", "{open}");
            let (_, whole) = send(&api, "GET", "/v1/silences", &[auth], "").await;
            let s = &whole["silences"][0];
            assert_eq!(s["comment"], "call +4915112345678", "{whole}");
            assert_eq!(s["created_by"], "alice.smith@example.org", "{whole}");
        }

        #[tokio::test]
        async fn the_token_lets_a_write_through_from_anywhere_and_nothing_else_does() {
            let api = api(Some("tok-123")).await;
            let cross = ["Sec-Fetch-Site: cross-site", "Content-Type: text/plain"];
            let (code, _) = send(&api, "POST", "/v1/silences", &cross, SILENCE).await;
            assert_eq!(code, 403);
            let wrong = [cross[0], cross[1], "Authorization: Bearer tok-124"];
            let (code, _) = send(&api, "POST", "/v1/silences", &wrong, SILENCE).await;
            assert_eq!(code, 403);
            assert_eq!(silences(&api).await, 0);
            let right = [cross[0], cross[1], "Authorization: Bearer tok-123"];
            let (code, v) = send(&api, "POST", "/v1/silences", &right, SILENCE).await;
            assert_eq!(code, 201, "{v}");
            assert_eq!(silences(&api).await, 1);
        }
    }
}
