//! One HTTP POST to an outbound receiver, with hard limits, and what its answer means.
//!
//! `ureq` (blocking, already used by the CLI) runs on tokio's blocking pool, never on a runtime
//! worker, with a connect timeout and an overall deadline, and the await is also bounded, so a
//! receiver that accepts and never answers costs one blocking thread for at most the timeout and
//! never touches the paging senders. Every POST goes through one shared [`ureq::Agent`], so
//! posts to the same receiver reuse its connection (and its TLS session) instead of building a
//! client each time. The URL is a credential (Slack and Teams put the secret in it): it is never
//! logged and is cut out of every error message.
//!
//! A refusal carries the receiver's own words (Slack answers `400 invalid_blocks`, Teams a JSON
//! error): the first few hundred bytes of its body, on one line, with the URL and every header
//! value sent cut out, end up in the error and so in the timeline note and the log, so an
//! operator sees why without reproducing the request. The receiver's headers are never kept.

use std::io::Read as _;
use std::sync::LazyLock;
use std::time::Duration;

/// Longest a connection attempt may take (less when the post's whole timeout is shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The one client for every outbound POST. Redirects are not followed (a moved webhook URL is
/// a configuration error to fix, not something to chase with the signature attached); each
/// request sets its own overall deadline.
static AGENT: LazyLock<ureq::Agent> = LazyLock::new(|| {
    ureq::AgentBuilder::new()
        .timeout_connect(CONNECT_TIMEOUT)
        .redirects(0)
        .user_agent(concat!("pagerbox/", env!("CARGO_PKG_VERSION")))
        .build()
});

/// The one client, for the daemon's other outbound requests too (the standby check's GET), so
/// they reuse connections the same way instead of building a client per request. Run requests on
/// the blocking pool and give each its own `.timeout(...)`, as [`post`] does.
pub fn agent() -> &'static ureq::Agent {
    &AGENT
}

/// The answer to one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx.
    Ok { status: u16 },
    /// Worth retrying (timeout, refused, 408, 429, 5xx); `after` from `Retry-After` if given.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// A refusal no retry will fix (other 4xx, a redirect).
    Reject { error: String },
}

/// Longest `Retry-After` honoured; a receiver asking for more is retried after this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Longest part of a receiver's answer kept in an error, in characters.
pub const ANSWER_SNIPPET_CHARS: usize = 200;
/// Most bytes of a refusal's body read; the rest is left unread (an error page can be large).
const ANSWER_READ_BYTES: u64 = 4096;

/// Classifies an HTTP status (with its `Retry-After` header, if any). Pure.
pub fn classify(status: u16, retry_after: Option<&str>) -> Answer {
    match status {
        200..=299 => Answer::Ok { status },
        408 | 429 | 500..=599 => Answer::Retry {
            error: format!("HTTP {status}"),
            after: retry_after.and_then(parse_retry_after),
        },
        300..=399 => Answer::Reject {
            error: format!("HTTP {status}: redirects are not followed (check the URL)"),
        },
        _ => Answer::Reject {
            error: format!("HTTP {status}"),
        },
    }
}

/// `Retry-After` in delay-seconds form (RFC 9110 section 10.2.3), capped at
/// [`MAX_RETRY_AFTER`]. The HTTP-date form is ignored (the normal backoff applies).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER))
}

/// A receiver's answer as one short line for an error note: every `secrets` occurrence replaced
/// by `<redacted>` (before anything else, so no later step can split one), control characters
/// and runs of whitespace turned into one space, cut at [`ANSWER_SNIPPET_CHARS`] with `…`.
/// `None` when nothing printable is left. Pure.
pub fn answer_snippet(raw: &[u8], secrets: &[&str]) -> Option<String> {
    let mut text = String::from_utf8_lossy(raw).into_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "<redacted>");
    }
    let one_line = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if one_line.is_empty() {
        return None;
    }
    if one_line.chars().count() <= ANSWER_SNIPPET_CHARS {
        return Some(one_line);
    }
    let mut cut: String = one_line.chars().take(ANSWER_SNIPPET_CHARS).collect();
    cut.push('…');
    Some(cut)
}

/// The answer with the receiver's words added to its error (a success needs none). Pure.
pub fn with_snippet(answer: Answer, snippet: Option<String>) -> Answer {
    let Some(snippet) = snippet else {
        return answer;
    };
    let said = |error: String| format!("{error}; the receiver answered: \"{snippet}\"");
    match answer {
        Answer::Ok { status } => Answer::Ok { status },
        Answer::Retry { error, after } => Answer::Retry {
            error: said(error),
            after,
        },
        Answer::Reject { error } => Answer::Reject { error: said(error) },
    }
}

/// What must never appear in a note: the URL, its path and query alone (Slack and Teams carry
/// the secret there, and receivers often echo only the path), and every header value sent.
fn secrets_of<'a>(url: &'a str, headers: &'a [(String, String)]) -> Vec<&'a str> {
    let mut secrets = vec![url];
    if let Some(rest) = url.split_once("://").map(|(_, rest)| rest) {
        if let Some(slash) = rest.find('/') {
            let path = &rest[slash..];
            if path.len() > 1 {
                secrets.push(path);
            }
        }
    }
    secrets.extend(headers.iter().map(|(_, v)| v.as_str()));
    // The longest first, so a value inside another is not replaced half-way.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

/// Classifies a received answer, reading a bounded part of a refusal's body for the note.
fn answer_of(resp: ureq::Response, secrets: &[&str]) -> Answer {
    let status = resp.status();
    let answer = classify(status, resp.header("Retry-After"));
    if let Answer::Ok { .. } = answer {
        return answer;
    }
    let mut raw = Vec::new();
    // A body that breaks off half-way still says something: keep what arrived.
    let _ = resp
        .into_reader()
        .take(ANSWER_READ_BYTES)
        .read_to_end(&mut raw);
    with_snippet(answer, answer_snippet(&raw, secrets))
}

/// POSTs `body` as JSON to `url` with `headers`, within `timeout` (connect at most 5 s of it).
pub async fn post(
    url: String,
    headers: Vec<(String, String)>,
    body: String,
    timeout: Duration,
) -> Answer {
    let blocking =
        tokio::task::spawn_blocking(move || post_blocking(&url, &headers, &body, timeout));
    match tokio::time::timeout(timeout + Duration::from_secs(1), blocking).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Answer::Retry {
            error: format!("sender thread failed: {e}"),
            after: None,
        },
        Err(_) => Answer::Retry {
            error: format!("no answer within {timeout:?}"),
            after: None,
        },
    }
}

fn post_blocking(url: &str, headers: &[(String, String)], body: &str, timeout: Duration) -> Answer {
    // The request's deadline also bounds the connect when it is shorter than CONNECT_TIMEOUT.
    let mut req = AGENT
        .post(url)
        .timeout(timeout)
        .set("Content-Type", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let scrub = |s: String| {
        if url.is_empty() {
            s
        } else {
            s.replace(url, "<url>")
        }
    };
    match req.send_string(body) {
        Ok(resp) | Err(ureq::Error::Status(_, resp)) => answer_of(resp, &secrets_of(url, headers)),
        Err(ureq::Error::Transport(t)) => {
            // Never `t.to_string()`: it starts with the URL.
            let mut msg = t.kind().to_string();
            if let Some(m) = t.message() {
                msg.push_str(": ");
                msg.push_str(m);
            }
            if let Some(src) = std::error::Error::source(&t) {
                msg.push_str(": ");
                msg.push_str(&src.to_string());
            }
            Answer::Retry {
                error: scrub(msg),
                after: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None), Answer::Ok { status: 200 });
        assert_eq!(classify(202, None), Answer::Ok { status: 202 });
        assert_eq!(
            classify(503, Some("7")),
            Answer::Retry {
                error: "HTTP 503".into(),
                after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify(429, None),
            Answer::Retry { after: None, .. }
        ));
        assert!(matches!(classify(408, None), Answer::Retry { .. }));
        assert!(matches!(classify(404, None), Answer::Reject { .. }));
        assert!(matches!(classify(400, Some("5")), Answer::Reject { .. }));
        assert!(matches!(classify(301, None), Answer::Reject { .. }));
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("999999"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn an_answer_is_one_short_line_without_secrets() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXsecret";
        let headers = vec![(
            "X-Pagerbox-Signature".to_string(),
            "sha256=abcdef".to_string(),
        )];
        let secrets = secrets_of(url, &headers);
        assert_eq!(
            answer_snippet(b"invalid_blocks\r\n", &secrets).as_deref(),
            Some("invalid_blocks")
        );
        let echo = format!(
            "no hook at /services/T000/B000/XXXXsecret\n\tfor {url}\x07 (sig sha256=abcdef)"
        );
        let s = answer_snippet(echo.as_bytes(), &secrets).unwrap();
        assert_eq!(s, "no hook at <redacted> for <redacted> (sig <redacted>)");
        let long = "é".repeat(ANSWER_SNIPPET_CHARS * 3);
        let s = answer_snippet(long.as_bytes(), &[]).unwrap();
        assert_eq!(s.chars().count(), ANSWER_SNIPPET_CHARS + 1);
        assert!(s.ends_with('…'));
        assert_eq!(answer_snippet(b" \r\n\t", &[]), None);
        // Not UTF-8: replaced, not refused.
        assert_eq!(
            answer_snippet(b"bad \xff byte", &[]).as_deref(),
            Some("bad \u{fffd} byte")
        );
    }

    #[test]
    fn the_receivers_words_follow_a_refusal_only() {
        let said = Some("invalid_blocks".to_string());
        assert_eq!(
            with_snippet(classify(400, None), said.clone()),
            Answer::Reject {
                error: "HTTP 400; the receiver answered: \"invalid_blocks\"".into()
            }
        );
        assert_eq!(
            with_snippet(classify(503, Some("3")), said.clone()),
            Answer::Retry {
                error: "HTTP 503; the receiver answered: \"invalid_blocks\"".into(),
                after: Some(Duration::from_secs(3))
            }
        );
        assert_eq!(
            with_snippet(classify(200, None), said),
            Answer::Ok { status: 200 }
        );
        assert_eq!(with_snippet(classify(404, None), None), classify(404, None));
    }

    #[tokio::test]
    async fn refused_is_retried_and_the_url_is_not_in_the_error() {
        // Bind then drop: nothing listens on the port any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/T000/B000/secretpart");
        match post(url, vec![], "{}".into(), Duration::from_secs(2)).await {
            Answer::Retry { error, .. } => assert!(!error.contains("secretpart"), "{error}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let started = std::time::Instant::now();
        let a = post(url, vec![], "{}".into(), Duration::from_millis(300)).await;
        assert!(matches!(a, Answer::Retry { .. }), "{a:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(l);
    }

    /// A receiver that answers 200 to every request on a keep-alive connection and counts the
    /// connections it accepted.
    fn keep_alive_receiver() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut r = BufReader::new(conn.try_clone().unwrap());
                    let mut w = conn;
                    loop {
                        let mut len = 0usize;
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            let lower = line.to_ascii_lowercase();
                            if let Some(v) = lower.strip_prefix("content-length:") {
                                len = v.trim().parse().unwrap();
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                    }
                });
            }
        });
        (url, accepted)
    }

    #[tokio::test]
    async fn posts_share_one_client_and_reuse_its_connection() {
        let (url, accepted) = keep_alive_receiver();
        for _ in 0..3 {
            let a = post(url.clone(), vec![], "{}".into(), Duration::from_secs(5)).await;
            assert_eq!(a, Answer::Ok { status: 200 });
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "three posts, one connection"
        );
    }
}
