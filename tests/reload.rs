//! Reloads that must not leave anyone unpaged, through the real binary and SIGHUP: a config that
//! pages nobody is refused (by `check` too); an incident accepted while unrouted pages once a
//! config that routes it arrives; a broken optional channel (email with a missing password file)
//! leaves the daemon running with email impaired while SMS pages, and a reload fixes it.

mod util;

use std::process::Command;

use nix::sys::signal::Signal;
use pagerbox_testkit::smtp::{SmtpTestOptions, SmtpTestServer, TestTls};
use serde_json::{json, Value};
use util::{Daemon, ExternalSim};

const ALICE: &str = "+4915100000011";

fn modem(sim: &ExternalSim) -> String {
    format!(
        "[modem]\ndevice = \"{}\"\nprofile = \"sim7600\"\ncommand_timeout = \"2s\"\nsms_timeout = \"5s\"\nhealth_interval = \"1s\"\n",
        sim.link.display()
    )
}

/// Alice, paged by SMS (and email when she has an address), one policy; `routes` as given.
fn people(email: bool, routes: &str) -> String {
    let (address, rule) = if email {
        (
            "email = \"alice@example.org\"",
            "[[users.rules]]\nchannel = \"email\"\nafter = \"0s\"",
        )
    } else {
        ("", "")
    };
    format!(
        r#"
[paging]
channels = ["sms", "email"]
max_attempts = 3
channel_timeout = "30s"
group_window = "0s"

[[users]]
id = "alice"
phone = "{ALICE}"
{address}
[[users.rules]]
channel = "sms"
after = "0s"
{rule}

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "10m"

{routes}
"#
    )
}

const ONLY_DB: &str = "[[routes]]\nid = \"db\"\npolicy = \"p\"\nmatch = { service = \"db\" }\n";
const ALL: &str = "[[routes]]\nid = \"all\"\npolicy = \"p\"\n";

/// Replaces the daemon's config file (the base part kept) and sends SIGHUP; returns the log
/// line count before, so the caller can look at what the reload logged.
fn reload(d: &Daemon, extra: &str) -> usize {
    let before = d.log().lines().count();
    let state = d.dir.path().join("state");
    std::fs::write(&d.config, util::base_config(&state, extra)).unwrap();
    d.signal(Signal::SIGHUP);
    before
}

fn log_since(d: &Daemon, from: usize) -> String {
    d.log().lines().skip(from).collect::<Vec<_>>().join("\n")
}

fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(util::BIN)
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn an_unrouted_incident_pages_once_a_config_that_routes_it_is_loaded() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&format!("{}\n{}", modem(&sim), people(false, ONLY_DB)));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "web frontend down", "service": "web"}));
    let kinds = d.timeline_kinds(id);
    assert!(kinds.contains(&"unrouted".to_string()), "{kinds:?}");
    // Routed alerts page as before; the unrouted one does not.
    d.trigger(json!({"summary": "db down", "service": "db"}));
    d.wait_for(20, "the db page", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.contains("db down"))
            .then_some(())
    });
    assert!(!sim.sms_to(ALICE).iter().any(|m| m.contains("web frontend")));

    let from = reload(&d, &format!("{}\n{}", modem(&sim), people(false, ALL)));
    d.wait_for(10, "config reloaded", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    d.wait_for(20, "the web page after the reload", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.contains("web frontend down"))
            .then_some(())
    });
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["route"], "all", "{v}");
    let kinds = d.timeline_kinds(id);
    assert!(kinds.contains(&"routed".to_string()), "{kinds:?}");
    // One page for it, not one per reload.
    let from = reload(&d, &format!("{}\n{}", modem(&sim), people(false, ALL)));
    d.wait_for(10, "second reload", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    // An alert raised after the reload pages: the engine has acted on the reload by then.
    let later = d.trigger(json!({"summary": "raised after the reload", "service": "db"}));
    d.wait_for(15, "the later alert's page", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.starts_with(&format!("#{later} ")))
            .then_some(())
    });
    let web_pages = sim
        .sms_to(ALICE)
        .iter()
        .filter(|m| m.contains("web frontend down"))
        .count();
    assert_eq!(web_pages, 1, "{:?}", sim.sms_to(ALICE));
}

#[test]
fn a_restart_with_a_config_that_routes_it_pages_an_unrouted_incident() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start(&format!("{}\n{}", modem(&sim), people(false, ONLY_DB)));
    d.wait_modem_up();
    let id = d.trigger(json!({"summary": "routed after restart", "service": "web"}));
    d.stop();
    let state = d.dir.path().join("state");
    std::fs::write(
        &d.config,
        util::base_config(&state, &format!("{}\n{}", modem(&sim), people(false, ALL))),
    )
    .unwrap();
    d.spawn();
    d.wait_for(30, "the page after the restart", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.contains("routed after restart"))
            .then_some(())
    });
    assert!(d.timeline_kinds(id).contains(&"routed".to_string()));
}

#[test]
fn a_config_that_pages_nobody_is_refused_by_check_and_by_sighup() {
    let d = Daemon::start(&people(false, ALL));
    let good = std::fs::read_to_string(&d.config).unwrap();
    let (code, out) = check(&d.config);
    assert_eq!(code, Some(0), "{out}");

    for nobody in [people(false, ""), String::new()] {
        let from = reload(&d, &nobody);
        let (code, out) = check(&d.config);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("pages nobody"), "{out}");
        assert!(
            out.starts_with(&format!("{}:1:1:", d.config.display())),
            "{out}"
        );
        d.wait_for(10, "reload rejected", || {
            log_since(&d, from)
                .contains("config reload rejected")
                .then_some(())
        });
        assert!(log_since(&d, from).contains("pages nobody"), "{}", d.log());
        // The running config still routes.
        let id = d.trigger(
            json!({"summary": format!("still routed {}", nobody.len()), "service": "any"}),
        );
        let (_, v) = d.get(&format!("/v1/incidents/{id}"));
        assert_eq!(v["incident"]["route"], "all", "{v}");
    }
    std::fs::write(&d.config, good).unwrap();
    let from = d.log().lines().count();
    d.signal(Signal::SIGHUP);
    d.wait_for(10, "reload", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
}

/// Sends SIGHUP and waits for the reload to be refused because a file is not a regular file.
fn refused_as_not_a_file(d: &Daemon) {
    let from = d.log().lines().count();
    d.signal(Signal::SIGHUP);
    let said = d.wait_for(10, "the reload refused", || {
        let l = log_since(d, from);
        l.contains("config reload rejected").then_some(l)
    });
    assert!(said.contains("not a regular file"), "{said}");
}

/// A config path or a token file swapped for a FIFO that nobody writes to: opening it would block
/// the reload for ever, and with it the loop that hears SIGTERM. The reload is refused instead,
/// the running config keeps paging, and SIGTERM still stops the daemon at once.
#[test]
fn a_reload_from_a_fifo_is_refused_and_sigterm_still_stops_the_daemon() {
    let mut d = Daemon::start(&people(false, ALL));
    let good = std::fs::read_to_string(&d.config).unwrap();
    let fifo = d.dir.path().join("token.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();

    // The token file named by an otherwise good config is a FIFO.
    let with_token = good.replace(
        "[http]\n",
        &format!("[http]\ntoken_file = \"{}\"\n", fifo.display()),
    );
    assert_ne!(with_token, good, "the base config has an [http] table");
    std::fs::write(&d.config, with_token).unwrap();
    refused_as_not_a_file(&d);

    // The email relay's CA file is a FIFO.
    let with_ca = format!(
        "{good}\n{}ca_file = \"{}\"\n",
        util::email_table(2525),
        fifo.display()
    );
    std::fs::write(&d.config, with_ca).unwrap();
    refused_as_not_a_file(&d);

    // The config file itself is a FIFO.
    std::fs::remove_file(&d.config).unwrap();
    nix::unistd::mkfifo(&d.config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    refused_as_not_a_file(&d);
    // Writes still need no token: the running config is the one in force.
    let id = d.trigger(json!({"summary": "after the refused reloads", "service": "db"}));
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["route"], "all", "{v}");

    d.signal(Signal::SIGTERM);
    let status = d.wait_exit(10);
    assert!(status.success(), "{status}:\n{}", d.log());
}

/// Settings read only at start (the UDP socket, the HTTP limits, the SMS part count the SMS
/// timeout is sized for) changed by a reload: the log names each as needing a restart, and the
/// running ones stay, rather than "config reloaded" while a datagram to the new port is lost.
#[test]
fn a_reload_names_the_start_only_settings_it_changed_and_keeps_them_running() {
    let d = Daemon::start(&people(false, ALL));
    let good = std::fs::read_to_string(&d.config).unwrap();
    let changed = good
        .replacen(
            "[udp]\nlisten = \"127.0.0.1:0\"",
            "[udp]\nlisten = \"127.0.0.1:9\"",
            1,
        )
        .replacen("[http]\n", "[http]\nmax_body_bytes = 1024\n", 1)
        .replacen("[paging]\n", "[paging]\nsms_max_parts = 5\n", 1);
    assert_eq!(changed.matches("127.0.0.1:9").count(), 1, "{changed}");
    std::fs::write(&d.config, changed).unwrap();
    let from = d.log().lines().count();
    d.signal(Signal::SIGHUP);
    let said = d.wait_for(10, "the reload", || {
        let l = log_since(&d, from);
        l.contains("config reloaded").then_some(l)
    });
    for name in ["udp.listen", "http.max_body_bytes", "paging.sms_max_parts"] {
        assert!(said.contains(name), "{name} not named:\n{said}");
    }
    assert!(said.contains("need a restart"), "{said}");
    // The running UDP socket still takes alerts, and the running body limit still applies.
    d.udp_send(b"critical udp-after-reload db still on the old socket");
    d.wait_for(10, "the datagram's incident", || {
        d.incident_by_key("udp-after-reload")
    });
    let big = json!({"summary": "x".repeat(3000), "service": "db"});
    let (code, v) = d.post_json("/v1/alerts", big);
    assert_eq!(code, 202, "{v}");
}

/// A test SMTP server with its own runtime (kept alive with it).
struct Smtp {
    _rt: tokio::runtime::Runtime,
    server: SmtpTestServer,
}

impl Smtp {
    fn start() -> Smtp {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(SmtpTestServer::start(SmtpTestOptions {
                tls: TestTls::StartTls,
                credentials: Some(("pagerbox".into(), "s3cret-mail".into())),
                ..Default::default()
            }))
            .unwrap();
        Smtp { _rt: rt, server }
    }
}

/// Turning the modem off by SIGHUP needs a restart: until then the modem that runs keeps
/// paging, rather than the engine failing every SMS page while `/healthz` shows SMS ready.
#[test]
fn a_reload_that_turns_the_modem_off_changes_nothing_until_a_restart() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&format!("{}\n{}", modem(&sim), people(false, ALL)));
    d.wait_modem_up();
    let off = format!("{}enabled = false\n\n{}", modem(&sim), people(false, ALL));
    let from = reload(&d, &off);
    d.wait_for(10, "config reloaded", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    let id = d.trigger(json!({"summary": "db down after the reload", "service": "db"}));
    d.wait_for(20, "the page by SMS", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.starts_with(&format!("#{id} ")))
            .then_some(())
    });
    assert!(!d.timeline_kinds(id).contains(&"page-failed".to_string()));
    assert!(
        log_since(&d, from).contains("turning the modem on or off needs a restart"),
        "{}",
        log_since(&d, from)
    );
    // Another device is no more taken up than "off": said, and paging goes on as it was.
    let elsewhere = modem(&sim).replace(&sim.link.display().to_string(), "/dev/nonexistent-tty");
    let from = reload(
        &d,
        &format!(
            "{elsewhere}
{}",
            people(false, ALL)
        ),
    );
    d.wait_for(10, "the reload to say so", || {
        log_since(&d, from)
            .contains("[modem] changes need a restart")
            .then_some(())
    });
    let id = d.trigger(json!({"summary": "db down after the second reload", "service": "db"}));
    d.wait_for(20, "the page by SMS", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.starts_with(&format!("#{id} ")))
            .then_some(())
    });
}

fn email_down_reason(d: &Daemon) -> Option<String> {
    let (_, h) = d.get("/healthz");
    h["paging"]["down"]
        .as_array()?
        .iter()
        .find(|x| x["channel"] == "email")
        .map(|x| x["reason"].as_str().unwrap_or_default().to_string())
}

#[test]
fn email_with_a_missing_password_file_is_impaired_not_fatal_and_a_reload_fixes_it() {
    let sim = ExternalSim::start();
    let smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.server.ca_pem().unwrap()).unwrap();
    let pw = dir.path().join("smtp-password");
    let email = |ca_file: &std::path::Path| {
        format!(
            "[email]\nenabled = true\nhost = \"localhost\"\nport = {}\ntls = \"starttls\"\nusername = \"pagerbox\"\npassword_file = \"{}\"\nca_file = \"{}\"\nfrom = \"pagerbox <pagerbox@localhost>\"\ntimeout = \"5s\"\n",
            smtp.server.addr().port(),
            pw.display(),
            ca_file.display()
        )
    };
    let extra = format!("{}\n{}\n{}", modem(&sim), email(&ca), people(true, ALL));
    // The daemon starts (it used to exit 1), says why email is out, and pages by SMS.
    let d = Daemon::start(&extra);
    d.wait_modem_up();
    let why = d.wait_for(10, "email down in /healthz", || email_down_reason(&d));
    assert!(why.contains("smtp-password"), "{why}");
    let (_, h) = d.get("/healthz");
    assert_eq!(h["paging"]["impaired"], false, "SMS still pages: {h}");
    d.trigger(json!({"summary": "paged without email", "service": "web"}));
    d.wait_for(20, "the SMS page", || {
        sim.sms_to(ALICE)
            .iter()
            .any(|m| m.contains("paged without email"))
            .then_some(())
    });
    assert!(smtp.server.messages().is_empty());
    // `check` refuses the same file, at the password_file line.
    let (code, out) = check(&d.config);
    assert_eq!(code, Some(1), "{out}");
    let line = std::fs::read_to_string(&d.config)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("password_file"))
        .unwrap()
        + 1;
    assert!(
        out.contains(&format!(
            "{}:{line}:17: email.password_file:",
            d.config.display()
        )),
        "{out}"
    );
    // A reload that breaks the CA file is refused while email is still unset up, too.
    let from = reload(
        &d,
        &format!(
            "{}\n{}\n{}",
            modem(&sim),
            email(&dir.path().join("gone.pem")),
            people(true, ALL)
        ),
    );
    d.wait_for(10, "reload rejected", || {
        log_since(&d, from)
            .contains("config reload rejected")
            .then_some(())
    });
    assert!(log_since(&d, from).contains("email.ca_file"), "{}", d.log());

    // The password file appears; SIGHUP with the same settings rebuilds the sender.
    std::fs::write(&pw, "s3cret-mail\n").unwrap();
    let from = reload(&d, &extra);
    d.wait_for(10, "config reloaded", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    d.wait_for(15, "email back in /healthz", || {
        email_down_reason(&d).is_none().then_some(())
    });
    d.trigger(json!({"summary": "paged by email too", "service": "web2"}));
    let msgs = d.wait_for(40, "the email page", || {
        let m: Vec<String> = smtp
            .server
            .messages()
            .into_iter()
            .map(|m| m.data_text())
            .filter(|t| t.contains("paged by email too"))
            .collect();
        (!m.is_empty()).then_some(m)
    });
    assert!(!msgs.is_empty());
    assert!(
        !d.log().contains("s3cret-mail"),
        "the password is never logged"
    );
    let (_, h): (u16, Value) = d.get("/healthz");
    assert!(
        h["paging"]["ready"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "email"),
        "{h}"
    );

    // Rotation: a new password under the same path is read by the next SIGHUP, with the config
    // unchanged. A wrong one makes the relay refuse the login...
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let from = reload(&d, &extra);
    d.wait_for(10, "config reloaded", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    d.trigger(json!({"summary": "sent with the rotated password", "service": "web3"}));
    d.wait_for(30, "the relay refusing the old password", || {
        log_since(&d, from)
            .lines()
            .any(|l| l.contains("535"))
            .then_some(())
    });
    let mailed = |smtp: &Smtp, text: &str| {
        smtp.server
            .messages()
            .into_iter()
            .any(|m| m.data_text().contains(text))
    };
    assert!(
        !mailed(&smtp, "sent with the rotated password"),
        "a refused login sent nothing"
    );
    // ...and the right one, again by SIGHUP alone, lets the next page through.
    std::fs::write(&pw, "s3cret-mail\n").unwrap();
    let from = reload(&d, &extra);
    d.wait_for(10, "config reloaded", || {
        log_since(&d, from)
            .contains("config reloaded")
            .then_some(())
    });
    d.trigger(json!({"summary": "sent after rotating back", "service": "web4"}));
    d.wait_for(40, "the page after the password was rotated back", || {
        mailed(&smtp, "sent after rotating back").then_some(())
    });
    assert!(!d.log().contains("not-the-password"), "never logged");
}
