//! End to end: `notify::email::EmailSender` against the real test SMTP server on 127.0.0.1
//! (`pagerbox_testkit::smtp`): plain, STARTTLS + AUTH with a private CA, implicit TLS, and the
//! faults the notifier must sort into retryable and permanent.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::TimeZone as _;
use mail_parser::MessageParser;
use pagerbox::config::{EmailConfig, EmailTransport, SmtpTls};
use pagerbox::incident::{Incident, Link, Severity, Status, TimelineEvent};
use pagerbox::notify::email::{
    render_incident_email, EmailError, EmailMessage, EmailSender, IncidentEmail,
};
use pagerbox_testkit::smtp::{
    Fault, ReceivedMessage, SmtpTestOptions, SmtpTestServer, Stage, TestAuthMechanism, TestTls,
};

const WAIT: Duration = Duration::from_secs(2);
const PASSWORD: &str = "correct horse battery";

/// A config pointing at `server`, with files written into `dir`.
fn config(
    server: &SmtpTestServer,
    dir: &Path,
    tls: SmtpTls,
    password: Option<&str>,
) -> EmailConfig {
    let ca_file = server.ca_pem().map(|pem| {
        let path = dir.join("ca.pem");
        std::fs::write(&path, pem).unwrap();
        path
    });
    let password_file = password.map(|pw| {
        let path = dir.join("smtp-password");
        std::fs::write(&path, format!("{pw}\n")).unwrap();
        path
    });
    EmailConfig {
        enabled: true,
        transport: EmailTransport::Smtp,
        host: "127.0.0.1".into(),
        port: server.addr().port(),
        tls,
        username: password.map(|_| "pager".to_string()),
        password_file,
        ca_file,
        from: "pagerbox <pagerbox@box.example>".into(),
        timeout: Duration::from_secs(1),
    }
}

fn message() -> EmailMessage {
    EmailMessage {
        to: "Alice <alice@example.org>".into(),
        subject: "[pagerbox] #7 CRIT Überlauf auf 東京 ✓".into(),
        text: "Plain part: Grüße aus Köln\n".into(),
        html: Some("<p>HTML part: Grüße aus Köln</p>\n".into()),
    }
}

async fn start(opts: SmtpTestOptions) -> SmtpTestServer {
    SmtpTestServer::start(opts)
        .await
        .expect("start test SMTP server")
}

fn auth_options(tls: TestTls) -> SmtpTestOptions {
    SmtpTestOptions {
        tls,
        credentials: Some(("pager".into(), PASSWORD.into())),
        ..SmtpTestOptions::default()
    }
}

async fn one_message(server: &SmtpTestServer) -> ReceivedMessage {
    let mut all = server
        .wait_for_messages(1, WAIT)
        .await
        .expect("a message arrives");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// Parses what the server received with an independent MIME parser and checks both parts.
fn assert_both_parts(received: &ReceivedMessage) {
    let parsed = MessageParser::default()
        .parse(&received.data)
        .expect("received data is a MIME message");
    assert_eq!(
        parsed.subject(),
        Some("[pagerbox] #7 CRIT Überlauf auf 東京 ✓")
    );
    assert_eq!(parsed.text_body_count(), 1);
    assert_eq!(parsed.html_body_count(), 1);
    assert_eq!(
        parsed.body_text(0).unwrap().trim_end(),
        "Plain part: Grüße aus Köln"
    );
    assert_eq!(
        parsed.body_html(0).unwrap().trim_end(),
        "<p>HTML part: Grüße aus Köln</p>"
    );
    let content_type = parsed.header_raw("Content-Type").unwrap();
    assert!(
        content_type.contains("multipart/alternative"),
        "{content_type}"
    );
    assert_eq!(received.mail_from, "pagerbox@box.example");
    assert_eq!(received.rcpt_to, vec!["alice@example.org".to_string()]);
}

/// The test server adds no `Message-ID` (as many relays do not), so the one received is ours:
/// every message carries its own, in the sender's domain.
#[tokio::test]
async fn every_message_carries_its_own_message_id() {
    let server = start(SmtpTestOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();
    sender.send(&message()).await.unwrap();
    sender.send(&message()).await.unwrap();
    let received = server
        .wait_for_messages(2, WAIT)
        .await
        .expect("both messages arrive");
    let ids: Vec<String> = received
        .iter()
        .map(|r| {
            let parsed = MessageParser::default().parse(&r.data).unwrap();
            parsed
                .message_id()
                .expect("a Message-ID header")
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert!(
            id.starts_with("pagerbox.") && id.ends_with("@box.example"),
            "{id}"
        );
    }
    assert_ne!(ids[0], ids[1], "each message has its own id");
}

#[tokio::test]
async fn plain_smtp_delivers_both_parts_and_a_utf8_subject() {
    let server = start(SmtpTestOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();

    let receipt = sender.send(&message()).await.unwrap();

    let received = one_message(&server).await;
    assert_both_parts(&received);
    assert!(!received.tls);
    assert_eq!(received.auth_user, None);
    assert_eq!(
        receipt.response,
        format!("250 2.0.0 Ok: queued as {}", received.queue_id)
    );
}

#[tokio::test]
async fn starttls_with_auth_plain_and_a_private_ca() {
    let server = start(auth_options(TestTls::StartTls)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server, dir.path(), SmtpTls::StartTls, Some(PASSWORD));
    let sender = EmailSender::new(&cfg).unwrap();

    sender.check().await.unwrap();
    sender.send(&message()).await.unwrap();

    let received = one_message(&server).await;
    assert_both_parts(&received);
    assert!(received.tls, "the message went over TLS");
    assert_eq!(received.auth_user.as_deref(), Some("pager"));
}

#[tokio::test]
async fn starttls_with_auth_login_only() {
    let server = start(SmtpTestOptions {
        auth_mechanisms: vec![TestAuthMechanism::Login],
        ..auth_options(TestTls::StartTls)
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server, dir.path(), SmtpTls::StartTls, Some(PASSWORD));
    EmailSender::new(&cfg)
        .unwrap()
        .send(&message())
        .await
        .unwrap();

    let received = one_message(&server).await;
    assert!(received.tls);
    assert_eq!(received.auth_user.as_deref(), Some("pager"));
}

#[tokio::test]
async fn implicit_tls_with_auth() {
    let server = start(auth_options(TestTls::Implicit)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server, dir.path(), SmtpTls::Implicit, Some(PASSWORD));
    EmailSender::new(&cfg)
        .unwrap()
        .send(&message())
        .await
        .unwrap();

    let received = one_message(&server).await;
    assert_both_parts(&received);
    assert!(received.tls);
    assert_eq!(received.auth_user.as_deref(), Some("pager"));
}

#[tokio::test]
/// A wrong (or expired) password refuses every message, not this one: the page waits for the
/// fix (retryable, the channel shown down meanwhile) instead of being given up for good.
async fn wrong_password_is_535_and_retryable_and_never_shown() {
    let server = start(auth_options(TestTls::StartTls)).await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrong-password-XYZZY";
    let cfg = config(&server, dir.path(), SmtpTls::StartTls, Some(wrong));
    let sender = EmailSender::new(&cfg).unwrap();

    let err = sender.send(&message()).await.unwrap_err();

    assert!(matches!(err, EmailError::Rejected { .. }), "{err:?}");
    assert_eq!(err.code(), Some(535));
    assert!(err.is_retryable());
    assert!(err.to_string().contains("535"), "{err}");
    assert!(err.to_string().contains("5.7.8"), "{err}");
    let shown = format!("{err} {err:?} {sender:?} {cfg:?}");
    assert!(!shown.contains("XYZZY"), "password leaked: {shown}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_error() {
    let server = start(SmtpTestOptions {
        tls: TestTls::StartTls,
        ..SmtpTestOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, dir.path(), SmtpTls::StartTls, None);
    cfg.ca_file = None; // only the public roots: the self-signed certificate is unknown

    let err = EmailSender::new(&cfg)
        .unwrap()
        .send(&message())
        .await
        .unwrap_err();

    assert!(matches!(err, EmailError::Tls { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn reply_451_is_retryable_and_carries_the_reply() {
    let server = start(SmtpTestOptions::default()).await;
    server.push_fault(Fault::reply(
        Stage::Rcpt,
        451,
        "4.3.0 Temporary lookup failure",
    ));
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();

    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(451));
    assert!(err.is_retryable());
    match &err {
        EmailError::Rejected { response, .. } => {
            assert!(
                response.contains("4.3.0 Temporary lookup failure"),
                "{response}"
            )
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    // The fault was used up: the retry gets through.
    sender.send(&message()).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn reply_550_is_permanent() {
    let server = start(SmtpTestOptions::default()).await;
    server.push_fault(Fault::reply(Stage::Rcpt, 550, "5.1.1 No such user"));
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();

    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(550));
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("No such user"), "{err}");
    // Postfix's unknown recipient mentions relaying; still the address, not the box.
    server.push_fault(Fault::reply(
        Stage::Rcpt,
        550,
        "5.1.1 <x@example.org>: Recipient address rejected: User unknown in relay recipient table",
    ));
    let err = sender.send(&message()).await.unwrap_err();
    assert!(!err.is_retryable(), "{err}");
}

/// A relay that will not relay for this box refuses every page: retryable, like a wrong
/// password, so the pages go out once the relay settings are fixed.
#[tokio::test]
async fn relaying_denied_is_retryable() {
    let server = start(SmtpTestOptions::default()).await;
    server.push_fault(Fault::reply(Stage::Rcpt, 554, "5.7.1 Relay access denied"));
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();
    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(554));
    assert!(err.is_retryable(), "{err}");
    // Fixed (the fault used up): the same message goes out.
    sender.send(&message()).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn replies_at_greeting_and_end_of_data_are_sorted_too() {
    let server = start(SmtpTestOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();

    server.push_fault(Fault::reply(Stage::Greeting, 421, "4.3.2 Shutting down"));
    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(421), "{err:?}");
    assert!(err.is_retryable());

    server.push_fault(Fault::reply(Stage::DataEnd, 554, "5.7.1 Rejected as spam"));
    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(554), "{err:?}");
    assert!(!err.is_retryable());

    server.push_fault(Fault::reply(Stage::Mail, 452, "4.3.1 Insufficient storage"));
    let err = sender.send(&message()).await.unwrap_err();
    assert_eq!(err.code(), Some(452), "{err:?}");
    assert!(err.is_retryable());

    assert!(server.messages().is_empty(), "no faulted message was kept");
}

#[tokio::test]
async fn connection_refused_is_retryable_and_recovers() {
    let server = start(SmtpTestOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let sender = EmailSender::new(&config(&server, dir.path(), SmtpTls::None, None)).unwrap();
    server.stop_listening().await;

    let err = sender.send(&message()).await.unwrap_err();
    assert!(matches!(err, EmailError::Connection { .. }), "{err:?}");
    // Each cause is said once: `cannot talk to SMTP server H: Connection error: ...`, never
    // `Connection error: Connection error: ...`.
    let text = err.to_string();
    let parts: Vec<&str> = text.split(": ").collect();
    assert!(
        parts.windows(2).all(|w| w[0] != w[1]),
        "a cause is repeated: {text}"
    );
    assert!(err.is_retryable());
    assert_eq!(err.code(), None);
    let err = sender.check().await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");

    server.resume_listening().await.unwrap();
    sender.check().await.unwrap();
    sender.send(&message()).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_stalled_server_times_out_within_the_timeout() {
    let server = start(SmtpTestOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&server, dir.path(), SmtpTls::None, None);
    cfg.timeout = Duration::from_millis(300);
    let sender = EmailSender::new(&cfg).unwrap();

    for stage in [Stage::Greeting, Stage::DataEnd] {
        server.push_fault(Fault::stall(stage));
        let started = Instant::now();
        let err = sender.send(&message()).await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, EmailError::Timeout { .. }), "{err:?}");
        assert!(err.is_retryable());
        assert!(
            // At the timeout, not at lettre's 60 s default; the slack is for a loaded machine.
            took >= Duration::from_millis(300) && took < Duration::from_millis(1300),
            "stall at {stage:?} took {took:?}"
        );
    }

    server.push_fault(Fault::stall(Stage::Greeting));
    let err = sender.check().await.unwrap_err();
    assert!(matches!(err, EmailError::Timeout { .. }), "{err:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_rendered_incident_arrives_intact() {
    let server = start(auth_options(TestTls::StartTls)).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&server, dir.path(), SmtpTls::StartTls, Some(PASSWORD));
    let sender = EmailSender::new(&cfg).unwrap();
    let t0 = chrono::Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap();
    let incident = Incident {
        id: 42,
        dedup_key: "db1/var".into(),
        status: Status::Triggered,
        severity: Severity::Critical,
        summary: "/var on db1 97% full <script>alert(1)</script>".into(),
        source: Some("prometheus".into()),
        service: Some("db".into()),
        route: Some("db".into()),
        details: serde_json::json!({"mount": "/var"}),
        links: vec![Link {
            href: "https://grafana.example.org/d/db1".into(),
            text: Some("Grafana".into()),
        }],
        alert_count: 1,
        first_seen: t0,
        last_seen: t0,
        acknowledged: None,
        resolved: None,
    };
    let timeline = vec![TimelineEvent {
        id: 1,
        at: t0,
        kind: pagerbox::incident::EventKind::Triggered.into(),
        actor: Some("alertmanager".into()),
        via: Some("http".into()),
        message: "first alert".into(),
        data: serde_json::Value::Null,
    }];
    let email = render_incident_email(&IncidentEmail {
        incident: &incident,
        timeline: &timeline,
        reply_hint: "Reply to the SMS with 42a to acknowledge, or run pagerbox ack 42".into(),
        runbook: None,
        to: "alice@example.org".into(),
        tz: chrono_tz::Europe::Berlin,
    });

    sender.send(&email).await.unwrap();

    let received = one_message(&server).await;
    let parsed = MessageParser::default().parse(&received.data).unwrap();
    assert_eq!(
        parsed.subject(),
        Some("[pagerbox] #42 CRIT db: /var on db1 97% full <script>alert(1)</script>")
    );
    let text = parsed.body_text(0).unwrap();
    assert!(text.contains("42a to acknowledge"), "{text}");
    assert!(text.contains("2026-11-22 03:00:00 CET"), "{text}");
    let html = parsed.body_html(0).unwrap();
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("<a href=\"https://grafana.example.org/d/db1\">Grafana</a>"));
}

/// The pattern the module documents for synchronous tests (e.g. ones that run the daemon as a
/// child process): a multi-thread runtime kept alive serves connections between `block_on`s.
#[test]
fn usable_from_a_synchronous_test_with_its_own_runtime() {
    use std::io::{BufRead as _, BufReader, Write as _};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(start(SmtpTestOptions::default()));

    let tcp = std::net::TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut writer = tcp;
    let mut expect = |send: Option<&str>, code: &str| {
        if let Some(line) = send {
            writer.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        }
        loop {
            let mut reply = String::new();
            reader.read_line(&mut reply).unwrap();
            assert!(reply.starts_with(code), "sent {send:?}, got {reply:?}");
            if reply.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
    };
    expect(None, "220");
    expect(Some("HELO sync.test"), "250");
    expect(Some("MAIL FROM:<a@x.test>"), "250");
    expect(Some("RCPT TO:<b@y.test>"), "250");
    expect(Some("DATA"), "354");
    expect(Some("Subject: sync\r\n\r\nhello\r\n."), "250");
    expect(Some("QUIT"), "221");

    let messages = rt.block_on(server.wait_for_messages(1, WAIT)).unwrap();
    assert_eq!(messages[0].data_text(), "Subject: sync\r\n\r\nhello\r\n");
    assert_eq!(messages[0].helo, "sync.test");
}
