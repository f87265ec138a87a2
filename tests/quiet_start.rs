//! A normal start is truthful: no "paging restored" when nothing was lost, no warning that the
//! box itself causes, and the modem's boot announcement is not called a restart.

mod util;

use util::{one_pager_config, Daemon, ExternalSim};

#[test]
fn a_normal_start_logs_no_warning_and_claims_no_restart_or_recovery() {
    let sim = ExternalSim::start();
    // Alice is paged for low urgency too, so no alert would page nobody.
    let d = Daemon::start(&one_pager_config(
        &sim,
        "10m",
        "[[users.rules]]\nurgency = \"low\"\nchannel = \"sms\"\nafter = \"0s\"",
    ));
    d.wait_for(20, "modem up", || {
        let (_, h) = d.get("/healthz");
        (h["modem"]["state"] == "up").then_some(())
    });
    let (code, _) = d.post_json(
        "/v1/alerts",
        serde_json::json!({"summary": "db down", "severity": "critical"}),
    );
    assert_eq!(code, 202);
    d.wait_for(10, "the page", || {
        sim.sms_to(util::PAGER_PHONE).into_iter().next()
    });
    // Time for a late boot announcement to be handled.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let log = d.log();
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains("ERROR "))
        .collect();
    assert!(loud.is_empty(), "warnings on a normal start: {loud:#?}");
    assert!(!log.contains("paging restored"), "{log}");
    assert!(log.contains("modem brought up"), "{log}");
    assert!(!log.contains("modem restarted"), "{log}");
}

/// A SIM locked with a PIN: the PIN goes in at bring-up, the `+CPIN: SIM PIN` the modem sent as
/// it booted is read afterwards and must not make the driver send the PIN again (refused by an
/// unlocked SIM, a PIN is never retried and the modem would stay down for good).
#[test]
fn a_pin_locked_sim_comes_up_and_stays_up() {
    let sim = ExternalSim::start_with(&["--pin", "1234"]);
    let dir = tempfile::tempdir().unwrap();
    let pin = dir.path().join("pin");
    std::fs::write(&pin, "1234\n").unwrap();
    let d = Daemon::start(&format!(
        "{modem}pin_file = \"{pin}\"\n{people}",
        modem = util::fast_modem(&sim),
        pin = pin.display(),
        people = util::on_call(util::PAGER_PHONE, util::SMS_AT_ONCE, "10m"),
    ));
    d.wait_for(20, "modem up", || {
        let (_, h) = d.get("/healthz");
        (h["modem"]["state"] == "up").then_some(())
    });
    // Time for the boot notice to be read and handled.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (code, h) = d.get("/healthz");
    assert_eq!(
        (code, &h["modem"]["state"]),
        (200, &serde_json::json!("up")),
        "{h}"
    );
    let (code, _) = d.post_json(
        "/v1/alerts",
        serde_json::json!({"summary": "db down", "severity": "critical"}),
    );
    assert_eq!(code, 202);
    d.wait_for(10, "the page", || {
        sim.sms_to(util::PAGER_PHONE).into_iter().next()
    });
    assert!(!d.log().contains("SIM PIN entry failed"), "{}", d.log());
}
