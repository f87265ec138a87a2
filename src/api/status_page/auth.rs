//! Session cookie and CSRF tokens for the status page: pure functions over keys and headers,
//! no I/O, no clock.
//!
//! - The session cookie holds `HMAC-SHA256(key = write token, "pagerbox status-page session v1")`,
//!   never the token itself: a leaked cookie does not reveal the token, and changing the token
//!   (then reloading the config) ends every session. Logout clears the cookie in the browser;
//!   the value stays valid until the token changes (there is no server-side session table).
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

/// The session value a browser holds after logging in with `token`.
pub fn session_for(token: &str) -> String {
    mac_hex(token.as_bytes(), b"pagerbox status-page session v1")
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
        let s = session_for("s3cret");
        assert!(!s.contains("s3cret"));
        assert_eq!(s.len(), 64);
        assert_ne!(s, session_for("s3cret2"));
        assert_eq!(s, session_for("s3cret"));
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
