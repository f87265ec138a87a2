//! USSD (`AT+CUSD`) through the real driver against the built-in simulator on a PTY: a GSM
//! text answer, a UCS-2 hex answer (dcs 72), `+CUSD: 4` (not supported), `+CUSD: 2` (network
//! terminated), no answer (timeout, then the modem still serves requests), no SIM and no
//! registration.

use std::time::Duration;

use pagerbox::modem::at::ussd::UssdStatus;
use pagerbox::modem::sim::{Fault, SimConfig, SimHandle, SimProfile, Simulator, UssdReply};
use pagerbox::modem::{HealthState, Modem, ModemError, ProfileChoice, Settings};
use pagerbox::supervisor::Heartbeat;
use tokio_util::sync::CancellationToken;

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    modem: Modem,
    /// Kept so the driver can hand over events (USSD needs none).
    _events: tokio::sync::mpsc::Receiver<pagerbox::modem::ModemEvent>,
    token: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn rig(profile: SimProfile) -> Rig {
    rig_with(profile, Heartbeat::detached("modem")).await
}

async fn rig_with(profile: SimProfile, heartbeat: Heartbeat) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimConfig::fast(profile, dir.path().join("modem")))
        .await
        .expect("simulator starts");
    let s = Settings {
        profile: ProfileChoice::Auto,
        command_timeout: Duration::from_secs(1),
        health_interval: Duration::from_millis(300),
        reopen_min: Duration::from_millis(100),
        reopen_max: Duration::from_millis(500),
        heartbeat,
        ..Settings::new(sim.pty_path())
    };
    let token = CancellationToken::new();
    let (modem, events) = Modem::spawn(s, token.clone());
    let mut rx = modem.health();
    tokio::time::timeout(
        Duration::from_secs(20),
        rx.wait_for(|h| h.state == HealthState::Up),
    )
    .await
    .expect("modem up in time")
    .expect("modem task alive");
    Rig {
        _dir: dir,
        sim,
        modem,
        _events: events,
        token,
    }
}

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn balance_answer_in_gsm_text_on_sim800() {
    let r = rig(SimProfile::Sim800).await;
    r.sim
        .set_ussd(
            "*100#",
            UssdReply::Text {
                text: "Balance: 12.34 EUR".into(),
                ucs2: false,
            },
        )
        .await
        .unwrap();
    let a = r.modem.ussd("*100#", WAIT).await.expect("answer");
    assert_eq!(a.status, UssdStatus::Done);
    assert_eq!(a.text.as_deref(), Some("Balance: 12.34 EUR"));
    assert_eq!(a.dcs, Some(15));
}

#[tokio::test]
async fn balance_answer_in_ucs2_hex_on_ec25() {
    let r = rig(SimProfile::Ec25).await;
    r.sim
        .set_ussd(
            "*101#",
            UssdReply::Text {
                text: "Guthaben: 3,50 €".into(),
                ucs2: true,
            },
        )
        .await
        .unwrap();
    let a = r.modem.ussd("*101#", WAIT).await.expect("answer");
    assert_eq!(a.dcs, Some(72));
    assert_eq!(a.text.as_deref(), Some("Guthaben: 3,50 €"));
}

#[tokio::test]
async fn not_supported_and_network_terminated_are_answers_with_their_status() {
    let r = rig(SimProfile::Sim7600).await;
    // A code the network does not know.
    let a = r.modem.ussd("*555#", WAIT).await.expect("answer");
    assert_eq!(a.status, UssdStatus::NotSupported);
    assert_eq!(a.text, None);
    r.sim
        .set_ussd("*100#", UssdReply::NetworkTerminated)
        .await
        .unwrap();
    let b = r.modem.ussd("*100#", WAIT).await.expect("answer");
    assert_eq!(b.status, UssdStatus::NetworkTerminated);
}

#[tokio::test]
async fn no_answer_times_out_and_the_modem_keeps_serving() {
    let r = rig(SimProfile::Sim800).await;
    r.sim.set_ussd("*100#", UssdReply::Timeout).await.unwrap();
    let started = std::time::Instant::now();
    let e = r
        .modem
        .ussd("*100#", Duration::from_millis(500))
        .await
        .expect_err("times out");
    assert!(matches!(e, ModemError::UssdTimeout { .. }), "{e}");
    assert!(e.is_retryable());
    assert!(started.elapsed() >= Duration::from_millis(500));
    let st = r.modem.status().await.expect("status after the timeout");
    assert!(st.registration.is_registered());
}

#[tokio::test]
async fn an_sms_page_goes_out_while_the_network_keeps_a_ussd_request_waiting() {
    // A heartbeat bound well below the USSD wait: the waiting driver is alive and must say so.
    let heartbeat = Heartbeat::new("modem", Duration::from_secs(2));
    let r = rig_with(SimProfile::Sim800, heartbeat.clone()).await;
    r.sim.set_ussd("*100#", UssdReply::Timeout).await.unwrap();
    let wait = Duration::from_secs(10);
    let ussd = {
        let modem = r.modem.clone();
        tokio::spawn(async move { modem.ussd("*100#", wait).await })
    };
    // Let the request reach the modem and start waiting for the network.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let receipt = r
        .modem
        .send_sms("+4915112345678", "db1 down")
        .await
        .expect("the page is sent during the wait");
    assert_eq!(receipt.parts, 1);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the page waited {:?} for the USSD answer",
        started.elapsed()
    );
    assert!(!ussd.is_finished(), "the USSD request still waits");
    while !ussd.is_finished() {
        assert_eq!(heartbeat.late(), None, "the waiting driver still beats");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let e = ussd.await.unwrap().expect_err("times out");
    assert!(matches!(e, ModemError::UssdTimeout { .. }), "{e}");
}

#[tokio::test]
async fn without_sim_or_network_the_request_is_refused() {
    let r = rig(SimProfile::Sim800).await;
    r.sim
        .fault(Fault::LoseRegistration { searching: true })
        .await
        .unwrap();
    let e = r.modem.ussd("*100#", WAIT).await.expect_err("no network");
    assert!(e.to_string().contains("CME"), "{e}");
    r.sim.heal().await.unwrap();
    r.sim.fault(Fault::SimMissing).await.unwrap();
    let e = r.modem.ussd("*100#", WAIT).await.expect_err("no SIM");
    assert!(e.to_string().contains("CME"), "{e}");
}

#[tokio::test]
async fn invalid_codes_never_reach_the_modem() {
    let r = rig(SimProfile::Generic).await;
    let e = r
        .modem
        .ussd("*100#\"\r+CMGD=1,4", WAIT)
        .await
        .expect_err("rejected");
    assert!(matches!(e, ModemError::InvalidUssd { .. }));
}
