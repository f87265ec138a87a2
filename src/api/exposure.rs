//! Least exposure for reads: when a write token is configured, an API answer read without it has
//! phone numbers and email addresses masked (`+49*********678`, `a***@example.org`): who is on
//! call and how to reach them is for the people holding the token. With the token (or with no
//! token configured, when the whole API is open anyway) answers are whole.
//!
//! Only reads (GET, HEAD) are masked. A write reaches its handler's answer only once the handler
//! has authenticated it, by whatever its sender uses (a bearer token, PagerDuty's `routing_key`
//! in the body, a Splunk On-Call key in the path), and its answer echoes what the sender sent:
//! masking it would hand PagerDuty's client a `dedup_key` that resolves nothing.
//!
//! Masking works on the answer's text, so it covers every read at once (incident timelines,
//! stakeholders, on-call, reports) without each handler having to remember it. Numbers are
//! matched in the E.164 form pagerbox stores them in (`+` and 7 to 15 digits); a `+` followed by
//! digits cannot start a JSON number, so nothing but text inside strings changes and the JSON
//! stays valid.

use std::sync::LazyLock;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use regex::{Captures, Regex};

use crate::intake::Intake;

/// Largest answer that is masked; larger ones are refused rather than sent whole.
const MAX_MASKED_BYTES: usize = 64 * 1024 * 1024;

static PHONE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+[0-9]{7,15}").expect("a valid pattern"));
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})",
    )
    .expect("a valid pattern")
});

/// `text` with phone numbers and email addresses masked.
pub fn mask(text: &str) -> String {
    let text = PHONE.replace_all(text, |c: &Captures| crate::config::mask_number(&c[0]));
    EMAIL
        .replace_all(&text, |c: &Captures| format!("{}***@{}", &c[1], &c[2]))
        .into_owned()
}

/// The middleware: masks the text of answers to requests without the token, when one is
/// configured.
pub async fn mask_unauthenticated(
    State(intake): State<Intake>,
    request: Request,
    next: Next,
) -> Response {
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    let whole = !read
        || intake.current_token().is_none()
        || super::guard::credential(&intake, request.headers());
    let response = next.run(request).await;
    let textual = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/"));
    if whole || !textual {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_MASKED_BYTES).await else {
        tracing::warn!("an answer too large to mask was not sent");
        return super::respond::error(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "the answer is too large to send without the token",
            vec![],
        );
    };
    let masked = mask(&String::from_utf8_lossy(&bytes));
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Ok(len) = HeaderValue::from_str(&masked.len().to_string()) {
        parts.headers.insert(header::CONTENT_LENGTH, len);
    }
    Response::from_parts(parts, Body::from(masked))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_are_masked_and_json_stays_json() {
        let v = serde_json::json!({
            "to": "+4915112345678",
            "text": "paged alice at +4915112345678 and alice.smith@example.org",
            "at": "2026-11-22T04:00:00+01:00",
            "count": 1234567890,
            "key": "disk-db1",
        });
        let masked = mask(&v.to_string());
        let back: serde_json::Value = serde_json::from_str(&masked).unwrap();
        assert_eq!(back["to"], "+**********678");
        assert_eq!(
            back["text"],
            "paged alice at +**********678 and a***@example.org"
        );
        assert_eq!(back["at"], v["at"], "time zones are not numbers");
        assert_eq!(back["count"], v["count"]);
        assert_eq!(back["key"], v["key"]);
        assert!(!masked.contains("12345678\""), "{masked}");
    }
}
