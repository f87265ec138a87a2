//! End-to-end self-test of the paging path: the real daemon binary, the modem simulator in its
//! own process on a real PTY (driven through its control socket), and `pagerbox selftest`.

mod util;

use std::time::Duration;

use pagerbox::modem::sim::control::ControlRequest;
use pagerbox::modem::sim::{Fault, UssdReply};
use serde_json::Value;
use util::{Daemon, ExternalSim};

const ALICE: &str = util::PAGER_PHONE;
/// The second SIM that answers test SMS.
const LOOP_SIM: &str = "+4915100000099";

fn config(sim: &ExternalSim, selftest: &str) -> String {
    format!(
        r#"
[modem]
device = "{link}"
profile = "sim7600"
command_timeout = "2s"
sms_timeout = "5s"
health_interval = "500ms"
ring_for = "2s"

[paging]
max_attempts = 2
channel_timeout = "3s"

{people}

[selftest]
grace = "1s"
recover = "1s"
check_interval = "300ms"
submit_timeout = "10s"
delivery_timeout = "10s"
ussd_timeout = "3s"
{selftest}
"#,
        link = sim.link.display(),
        people = util::on_call(ALICE, util::SMS_AT_ONCE, "60s"),
        selftest = if selftest.contains("reply_timeout") {
            selftest.to_string()
        } else {
            format!("reply_timeout = \"20s\"\n{selftest}")
        }
    )
}

fn set_ussd(sim: &ExternalSim, code: &str, text: &str) {
    sim.request(ControlRequest::SetUssd {
        code: code.into(),
        reply: UssdReply::Text {
            text: text.into(),
            ucs2: false,
        },
    });
}

fn incident_status(d: &Daemon, key: &str) -> Option<String> {
    d.incident_by_key(key)
        .and_then(|i| i["status"].as_str().map(str::to_string))
}

/// The code in a test SMS: "pagerbox self-test 123456 (...)".
fn code_in(sms: &str) -> Option<String> {
    let rest = sms.split("self-test ").nth(1)?;
    Some(rest.split_whitespace().next()?.to_string())
}

/// Runs `pagerbox selftest` (with `args`) in a thread while `meanwhile` plays the second SIM.
fn selftest_cli(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut all = vec!["selftest"];
    all.extend_from_slice(args);
    d.cli(&all)
}

fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run}"))
}

/// Answers the next test SMS to the loop SIM with its code, as a second SIM would.
fn answer_test_sms(d: &Daemon, sim: &ExternalSim, already: usize) -> String {
    let sms = d.wait_for(20, "the test SMS at the second SIM", || {
        sim.sms_to(LOOP_SIM).into_iter().nth(already)
    });
    let code = code_in(&sms).unwrap_or_else(|| panic!("no code in {sms:?}"));
    sim.request(ControlRequest::SmsIn {
        from: LOOP_SIM.into(),
        text: format!("OK {code}"),
        options: Default::default(),
    });
    code
}

#[test]
fn selftest_cli_reports_every_step_with_timings_and_closes_the_loop() {
    let sim = ExternalSim::start();
    set_ussd(&sim, "*100#", "Balance: 12.34 EUR");
    let d = Daemon::start(&config(
        &sim,
        &format!(
            "target = \"{LOOP_SIM}\"\nexpect_reply_from = \"{LOOP_SIM}\"\ncredit_ussd = \"*100#\"\ncredit_min = 5.0\n"
        ),
    ));
    d.wait_modem_up();

    let out = std::thread::scope(|s| {
        let cli = s.spawn(|| selftest_cli(&d, &[]));
        let code = answer_test_sms(&d, &sim, 0);
        let out = cli.join().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(text.contains(&format!("code {code}")), "{text}");
        out
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    let expect = [
        ("modem responds (AT)", "SIMCOM"),
        ("SIM ready", "ready"),
        ("registered (operator)", "pagerbox net"),
        ("signal", "dBm"),
        ("credit", "balance 12.34"),
        ("test SMS submitted", "+CMGS reference"),
        ("delivered (status report)", "delivered"),
        ("reply received", "from"),
    ];
    assert_eq!(lines.len(), expect.len() + 1, "{text}");
    for (line, (name, detail)) in lines.iter().zip(expect) {
        assert!(line.starts_with("  ok    "), "{line}");
        assert!(line.contains(name), "{line}");
        assert!(line.contains(" ms  "), "no timing in {line}");
        assert!(line.contains(detail), "{line}");
    }
    assert!(
        lines[expect.len()].starts_with("self-test passed"),
        "{text}"
    );
    // The reply went to the self-test, not to the SMS command handler (which would answer it).
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim.sms_to(LOOP_SIM).len(), 1, "{:?}", sim.sms_to(LOOP_SIM));

    // The run is stored, with its steps, for GET /v1/selftest.
    let (code, v) = d.get("/v1/selftest");
    assert_eq!(code, 200);
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["ok"], true);
    assert_eq!(runs[0]["trigger"], "manual");
    assert_eq!(step(&runs[0], "reply")["outcome"], "ok");
    let history = selftest_cli(&d, &["--history"]);
    assert!(String::from_utf8_lossy(&history.stdout).contains("manual    passed"));
}

#[test]
fn sim_removed_fails_at_the_sim_step_and_the_incident_is_raised_then_resolved() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, ""));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::SimMissing,
    });

    let out = selftest_cli(&d, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["ok"], false);
    assert_eq!(run["failed_step"], "sim");
    assert_eq!(step(&run, "at")["outcome"], "ok");
    assert_eq!(step(&run, "sim")["outcome"], "failed");
    assert_eq!(step(&run, "sim")["detail"], "not inserted");
    assert_eq!(step(&run, "registration")["outcome"], "skipped");
    assert!(step(&run, "at")["ms"].is_u64());

    // Impaired for longer than the grace: an incident through the routes.
    let inc = d.wait_for(15, "the modem incident", || {
        d.incident_by_key("selftest:modem")
            .filter(|i| i["status"] == "triggered")
    });
    assert_eq!(inc["service"], "pagerbox");
    assert_eq!(inc["source"], "selftest");
    assert_eq!(inc["route"], "default");
    assert!(
        inc["summary"]
            .as_str()
            .unwrap()
            .contains("SIM not inserted"),
        "{inc}"
    );

    // SIM back: health holds for `recover`, the incident resolves, the self-test passes.
    sim.request(ControlRequest::Heal);
    d.wait_for(20, "the incident resolved", || {
        (incident_status(&d, "selftest:modem").as_deref() == Some("resolved")).then_some(())
    });
    let out = selftest_cli(&d, &[]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn deregistered_fails_at_the_registration_step() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, &format!("target = \"{LOOP_SIM}\"\n")));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::LoseRegistration { searching: false },
    });
    let out = selftest_cli(&d, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["failed_step"], "registration");
    assert_eq!(step(&run, "sim")["outcome"], "ok");
    assert_eq!(step(&run, "signal")["outcome"], "skipped");
    // No test SMS is queued while the modem cannot page.
    assert_eq!(step(&run, "sms")["outcome"], "skipped");
    d.wait_for(15, "the modem incident", || {
        (incident_status(&d, "selftest:modem").as_deref() == Some("triggered")).then_some(())
    });
    assert!(sim.sms_to(LOOP_SIM).is_empty());
}

#[test]
fn low_credit_raises_an_incident_and_a_topped_up_credit_resolves_it() {
    let sim = ExternalSim::start();
    set_ussd(&sim, "*100#", "Ihr Guthaben: 1,20 EUR");
    let d = Daemon::start(&config(
        &sim,
        "credit_ussd = \"*100#\"\ncredit_pattern = \"Guthaben: ([0-9,]+)\"\ncredit_min = 5.0\n",
    ));
    let inc = d.wait_for(20, "the credit incident", || {
        d.incident_by_key("selftest:credit")
            .filter(|i| i["status"] == "triggered")
    });
    assert!(
        inc["summary"].as_str().unwrap().contains("1.2 (minimum 5)"),
        "{inc}"
    );
    // A self-test now fails at the credit step (everything else is fine).
    let out = selftest_cli(&d, &["--json"]);
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["failed_step"], "credit", "{run}");
    assert_eq!(step(&run, "credit")["detail"], "balance 1.2, below 5");

    set_ussd(&sim, "*100#", "Ihr Guthaben: 25,00 EUR");
    let out = selftest_cli(&d, &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        incident_status(&d, "selftest:credit").as_deref(),
        Some("resolved")
    );
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn scheduled_test_page_fires_and_the_loop_closes_with_the_second_sims_reply() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start_clocked(&config(
        &sim,
        &format!(
            "schedule = \"every 1h\"\ntarget = \"{LOOP_SIM}\"\nexpect_reply_from = \"{LOOP_SIM}\"\n"
        ),
    ));
    d.wait_modem_up();
    // Not before the schedule says.
    d.advance(Duration::from_secs(50 * 60));
    d.hold(
        Duration::from_millis(500),
        "tested before the schedule",
        || sim.sms_to(LOOP_SIM).is_empty(),
    );
    d.advance(Duration::from_secs(11 * 60));
    let code = answer_test_sms(&d, &sim, 0);
    let run = d.wait_for(20, "the scheduled run stored", || {
        let (_, v) = d.get("/v1/selftest?limit=50");
        v["runs"]
            .as_array()?
            .iter()
            .find(|r| r["code"] == code.as_str())
            .cloned()
    });
    assert_eq!(run["trigger"], "schedule");
    assert_eq!(run["ok"], true, "{run}");
    assert_eq!(step(&run, "reply")["outcome"], "ok");
    assert_eq!(step(&run, "sms")["outcome"], "ok");
    assert!(d.incident_by_key("selftest:run").is_none());
}

#[cfg_attr(
    not(feature = "fault-injection"),
    ignore = "needs --features fault-injection (scripts/test.sh)"
)]
#[test]
fn scheduled_run_without_reply_raises_the_run_incident() {
    let sim = ExternalSim::start();
    let mut d = Daemon::start_clocked(&config(
        &sim,
        &format!(
            "schedule = \"every 1h\"\ntarget = \"{LOOP_SIM}\"\nexpect_reply_from = \"{LOOP_SIM}\"\nreply_timeout = \"1s\"\n"
        ),
    ));
    d.wait_modem_up();
    d.advance(Duration::from_secs(61 * 60));
    let inc = d.wait_for(30, "the run incident", || {
        d.incident_by_key("selftest:run")
            .filter(|i| i["status"] == "triggered")
    });
    assert!(
        inc["summary"].as_str().unwrap().contains("reply received"),
        "{inc}"
    );
}

// The fake panel is in test builds only (feature `testkit`).
#[cfg(feature = "testkit")]
#[test]
fn led_shows_the_fault_while_the_modem_incident_is_raised() {
    let sim = ExternalSim::start();
    // E-mail is on, through a relay that answers its check: paging as a whole is not impaired
    // when the modem is, and only the self-test's fault flag can blink the LED fast.
    let smtp = util::Smtp::start();
    let d = Daemon::start(&format!(
        "[gpio]\nbackend = \"fake\"\n{}{}",
        smtp.email_table(),
        config(&sim, "")
    ));
    let sock = d.state_dir().join("fake-panel.sock");
    let mut panel = d.wait_for(10, "the fake panel socket", || {
        pagerbox::panel::control::FakePanelClient::connect(&sock).ok()
    });
    d.wait_modem_up();
    let toggles = |p: &mut pagerbox::panel::control::FakePanelClient, ms: u64| {
        let before = p.led_writes().unwrap().len();
        std::thread::sleep(Duration::from_millis(ms));
        p.led_writes().unwrap().len() - before
    };
    // The modem incident is acknowledged at once, so its slow "unacknowledged" blink is out of
    // the way too.
    sim.request(ControlRequest::Fault {
        fault: Fault::SimMissing,
    });
    let inc = d.wait_for(15, "the modem incident", || {
        d.incident_by_key("selftest:modem")
            .filter(|i| i["status"] == "triggered")
    });
    let id = inc["id"].as_i64().unwrap();
    let (code, _) = d.post_json(
        &format!("/v1/incidents/{id}/acknowledge"),
        serde_json::json!({"by": "test"}),
    );
    assert_eq!(code, 200);
    let (_, h) = d.get("/healthz");
    assert_eq!(h["paging"]["impaired"], false, "{h}");
    let n = toggles(&mut panel, 1500);
    assert!(
        n >= 8,
        "fast blink while impaired, got {n} toggles in 1.5 s"
    );

    sim.request(ControlRequest::Heal);
    d.wait_for(20, "the incident resolved", || {
        (incident_status(&d, "selftest:modem").as_deref() == Some("resolved")).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let n = toggles(&mut panel, 1500);
    assert!(
        n <= 2,
        "no fast blink once healthy, got {n} toggles in 1.5 s"
    );
}

#[test]
fn oncall_target_gets_the_test_sms() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, "target = \"oncall:primary\"\n"));
    d.wait_modem_up();
    let out = selftest_cli(&d, &["--json"]);
    assert!(out.status.success(), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(step(&run, "sms")["outcome"], "ok");
    let code = run["code"].as_str().unwrap();
    let sms = sim.sms_to(ALICE);
    assert_eq!(sms.len(), 1, "{sms:?}");
    assert!(sms[0].contains(&format!("self-test {code}")), "{sms:?}");
    assert!(sms[0].contains("No action needed"), "{sms:?}");
}

#[test]
fn silent_modem_fails_at_the_first_step() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, &format!("target = \"{LOOP_SIM}\"\n")));
    d.wait_modem_up();
    sim.request(ControlRequest::Fault {
        fault: Fault::Silence,
    });
    let out = selftest_cli(&d, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(run["failed_step"], "at", "{run}");
    for s in ["sim", "registration", "signal", "sms"] {
        assert_eq!(step(&run, s)["outcome"], "skipped", "{s}: {run}");
    }
    assert!(sim.sms_to(LOOP_SIM).is_empty());
}

/// The modem goes down while the store cannot write: the incident that says so is raised once
/// the store writes again, not lost with the one write that failed.
#[cfg(feature = "fault-injection")]
#[test]
fn the_modem_incident_is_raised_after_the_store_refused_it_once() {
    let sim = ExternalSim::start();
    let d = Daemon::start(&config(&sim, ""));
    d.wait_modem_up();
    // Past the simulator's late boot announcement before injecting faults.
    std::thread::sleep(Duration::from_secs(2));
    let (code, v) = d.post_json(
        "/v1/faults",
        serde_json::json!({"name": "store.ioerr", "for": "4s"}),
    );
    assert_eq!(code, 200, "{v}");
    sim.request(ControlRequest::Fault {
        fault: Fault::SimMissing,
    });
    // The grace (1 s) ends while every write fails.
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.incident_by_key("selftest:modem").is_none());
    d.wait_for(
        20,
        "the modem incident, once the store writes again",
        || (incident_status(&d, "selftest:modem").as_deref() == Some("triggered")).then_some(()),
    );
}
