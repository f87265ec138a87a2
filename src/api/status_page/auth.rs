//! Session cookie and CSRF tokens for the status page: pure functions over keys, headers and
//! the time they are given, no I/O.
//!
//! - The session cookie holds when it was issued and
//!   `HMAC-SHA256(key = write token, "pagerbox status-page session v2:" + issued)`, never the
//!   token itself: a leaked cookie does not reveal the token, it stops working 12 hours after
//!   the login (checked here, not left to the browser's `Max-Age`), and changing the token
//!   (then reloading the config) ends every session at once. Logout clears the cookie in the
//!   browser; a copy taken before stays valid until its 12 hours end (there is no server-side
//!   session table).
//! - A CSRF token is `HMAC-SHA256(key = per-run random key, "csrf:" + session)`: a page cannot
//!   forge it without reading our HTML, which the browser's same-origin policy forbids. The login
//!   form has one too (session ""), against login CSRF. A restart of the daemon changes the key,
//!   so a form loaded before the restart is refused once (403) and works after a reload.
//! - Every POST from the page is also refused when the browser says it comes from another site
//!   (`Sec-Fetch-Site`) or names another origin (`Origin`).

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The cookie that carries the session value.
pub const SESSION_COOKIE: &str = "pagerbox_session";

fn mac_hex(key: &[u8], msg: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(msg);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when `a == b`, in time that does not depend on where they differ (compares digests).
pub fn same(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// How far in the future a session's issue time may be (the clock was stepped back a little
/// since the login) before the session is refused.
const ISSUED_SKEW_SECONDS: i64 = 60;

/// The session value a browser holds after logging in with `token` at `issued` (seconds since
/// the epoch): `<issued>.<mac>`.
pub fn session_for(token: &str, issued: i64) -> String {
    let mac = mac_hex(
        token.as_bytes(),
        format!("pagerbox status-page session v2:{issued}").as_bytes(),
    );
    format!("{issued}.{mac}")
}

/// Whether `value` is a session issued with `token` at most `max_age` seconds before `now`.
pub fn session_valid(token: &str, value: &str, now: i64, max_age: i64) -> bool {
    let Some(issued) = value
        .split_once('.')
        .and_then(|(issued, _)| issued.parse::<i64>().ok())
    else {
        return false;
    };
    let fresh =
        issued <= now.saturating_add(ISSUED_SKEW_SECONDS) && now.saturating_sub(issued) <= max_age;
    fresh && same(value, &session_for(token, issued))
}

/// The CSRF token for forms shown to the holder of `session` (`""` before login).
pub fn csrf_for(run_key: &[u8], session: &str) -> String {
    mac_hex(run_key, format!("csrf:{session}").as_bytes())
}

/// The value of cookie `name` in the request's `Cookie` headers, if any.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Why a POST is refused as cross-site, or `None` when it may come from our own page.
///
/// `Sec-Fetch-Site` (set by the browser, scripts cannot forge it) decides when present. Else an
/// `Origin` naming another host is refused. `Origin: null` is left to the CSRF token: browsers
/// send it for our own forms because the page's `Referrer-Policy` is `no-referrer`. Tools such
/// as curl send neither header, and then the CSRF token alone decides.
pub fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return (site != "same-origin" && site != "none")
            .then_some("the request came from another site (Sec-Fetch-Site)");
    }
    match header("origin") {
        None | Some("null") => None,
        Some(origin) => {
            let host = header("host").unwrap_or("");
            let ours = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|o| !host.is_empty() && o.eq_ignore_ascii_case(host));
            (!ours).then_some("the request came from another origin (Origin)")
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

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            mac_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn session_hides_the_token_and_depends_on_it() {
        let s = session_for("s3cret", 1_800_000_000);
        assert!(!s.contains("s3cret"));
        assert_eq!(s.len(), 11 + 64);
        assert_ne!(s, session_for("s3cret2", 1_800_000_000));
        assert_eq!(s, session_for("s3cret", 1_800_000_000));
    }

    /// A session ends 12 hours after its login whatever the browser keeps, and cannot be
    /// stretched by editing its issue time.
    #[test]
    fn a_session_expires_on_the_server_and_its_time_cannot_be_forged() {
        let (t0, max) = (1_800_000_000, 12 * 3600);
        let s = session_for("s3cret", t0);
        assert!(session_valid("s3cret", &s, t0, max));
        assert!(session_valid("s3cret", &s, t0 + max, max));
        assert!(!session_valid("s3cret", &s, t0 + max + 1, max), "expired");
        assert!(!session_valid("s3cret2", &s, t0, max), "another token");
        assert!(
            session_valid("s3cret", &s, t0 - 30, max),
            "a small step back"
        );
        assert!(
            !session_valid("s3cret", &s, t0 - 3600, max),
            "issued in the future"
        );
        let (_, mac) = s.split_once('.').unwrap();
        let forged = format!("{}.{mac}", t0 + max);
        assert!(!session_valid("s3cret", &forged, t0 + max + 10, max));
        for junk in ["", ".", "abc", "1.", "x.y", "99999999999999999999999.00"] {
            assert!(!session_valid("s3cret", junk, t0, max), "{junk:?}");
        }
    }

    #[test]
    fn csrf_depends_on_run_key_and_session() {
        let a = csrf_for(b"k1", "sess");
        assert_ne!(a, csrf_for(b"k2", "sess"));
        assert_ne!(a, csrf_for(b"k1", "other"));
        assert!(same(&a, &csrf_for(b"k1", "sess")));
    }

    #[test]
    fn cookie_is_found_among_several() {
        let h = headers(&[("cookie", "a=1; pagerbox_session=abc ; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn cross_site_posts_are_refused_same_origin_ones_pass() {
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        assert!(cross_site(&headers(&[
            ("sec-fetch-site", "cross-site"),
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ]))
        .is_some());
        assert!(cross_site(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ]))
        .is_some());
        assert_eq!(
            cross_site(&headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:8080"),
                ("host", "127.0.0.1:8080")
            ])),
            None
        );
        // What Chromium sends for our own form under `Referrer-Policy: no-referrer`.
        assert_eq!(
            cross_site(&headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "null"),
                ("host", "127.0.0.1:8080")
            ])),
            None
        );
        assert_eq!(cross_site(&HeaderMap::new()), None);
    }
}
