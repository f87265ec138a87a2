//! One HTTP POST to an outbound receiver, with hard limits, and what its answer means.
//!
//! `ureq` (blocking, already used by the CLI) runs on tokio's blocking pool, never on a runtime
//! worker, with a connect timeout and an overall deadline, and the await is also bounded, so a
//! receiver that accepts and never answers costs one blocking thread for at most the timeout and
//! never touches the paging senders. Every POST goes through one shared [`ureq::Agent`], so
//! posts to the same receiver reuse its connection (and its TLS session) instead of building a
//! client each time. The URL is a credential (Slack and Teams put the secret in it): it is never
//! logged and is cut out of every error message.

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
        Ok(resp) => classify(resp.status(), resp.header("Retry-After")),
        Err(ureq::Error::Status(code, resp)) => classify(code, resp.header("Retry-After")),
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
