//! Driver tests over `tokio::io::duplex` with the scripted fake modem, in paused time.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::clock::ManualClock;
use crate::modem::fake::{FakeModem, Script, ScriptedOpener};
use crate::modem::pdu::{self, DeliveryOutcome, SubmitOptions};
use crate::modem::profile::ProfileChoice;

/// A TS 23.040-style DELIVER vector: "How are you?" from +31641600986 via +31624000000.
const DELIVER: &str =
    "07911326040000F0040B911346610089F60000208062917314480CC8F71D14969741F977FD07";
/// A STATUS-REPORT TPDU vector: reference 4 to +4915259911630, delivered.
const REPORT: &str = "06040D91945152991136F00160124130340A0160124130940A00";

fn settings() -> Settings {
    Settings {
        profile: ProfileChoice::Generic,
        health_interval: Duration::from_secs(3600),
        command_timeout: Duration::from_secs(5),
        sms_timeout: Duration::from_secs(10),
        reopen_min: Duration::from_millis(100),
        reopen_max: Duration::from_secs(2),
        part_retry_delay: Duration::from_millis(100),
        ..Settings::new("/dev/fake-modem")
    }
}

fn identify(s: Script, model: &str) -> Script {
    s.ok("AT")
        .ok("ATE0")
        .ok("AT+CMEE=1")
        .expect("AT+CGMI", &["SIMCOM INCORPORATED", "OK"])
        .expect("AT+CGMM", &[model, "OK"])
        .expect("AT+CGMR", &["+CGMR: LE20B04SIM7600M22", "OK"])
        .expect("AT+CGSN", &["490154203237518", "OK"])
        .ok("AT+CREG=1")
        .ok("AT+CEREG=1")
}

fn configure(s: Script) -> Script {
    s.ok("AT+CMGF=0")
        .expect(
            "AT+CPMS=\"SM\",\"SM\",\"SM\"",
            &["+CPMS: 0,30,0,30,0,30", "OK"],
        )
        .ok("AT+CNMI=2,1,0,1,0")
        .ok("AT+CLIP=1")
}

fn network(s: Script) -> Script {
    s.expect("AT+CREG?", &["+CREG: 1,1", "OK"])
        .expect("AT+CEREG?", &["+CEREG: 1,1", "OK"])
        .expect("AT+CSQ", &["+CSQ: 20,99", "OK"])
        .expect("AT+COPS?", &["+COPS: 0,0,\"TestNet\",7", "OK"])
}

/// A generic modem coming up with a ready SIM and nothing stored.
fn generic_up(s: Script) -> Script {
    let s = identify(s, "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    network(configure(s).ok("AT+CMGL=4"))
}

fn start(
    s: Settings,
    plan: Vec<Result<Script, io::ErrorKind>>,
) -> (
    Modem,
    mpsc::Receiver<ModemEvent>,
    mpsc::UnboundedReceiver<FakeModem>,
    CancellationToken,
) {
    let (opener, fakes) = ScriptedOpener::new(plan);
    let clock = Arc::new(ManualClock::new(
        chrono::Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap(),
    ));
    let token = CancellationToken::new();
    let (modem, events) = Modem::spawn_with(s, opener, clock, token.clone());
    (modem, events, fakes, token)
}

async fn wait_for(rx: &mut watch::Receiver<Health>, state: HealthState) -> Health {
    let got = tokio::time::timeout(Duration::from_secs(600), rx.wait_for(|h| h.state == state))
        .await
        .map(|r| r.map(|h| h.clone()));
    match got {
        Ok(Ok(h)) => h,
        Ok(Err(_)) => panic!("modem task gone"),
        Err(_) => panic!("health never became {state:?}, last {:?}", *rx.borrow()),
    }
}

async fn next_event(events: &mut mpsc::Receiver<ModemEvent>) -> ModemEvent {
    tokio::time::timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("no event")
        .expect("event channel closed")
}

#[tokio::test(start_paused = true)]
async fn brings_up_and_reports_status() {
    let script = generic_up(Script::new().echo())
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"])
        .pipe(network);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let mut health = modem.health();
    let h = wait_for(&mut health, HealthState::Up).await;
    assert_eq!(h.reason, "ready");
    let st = modem.status().await.unwrap();
    assert_eq!(st.model, "GENERIC-LTE");
    assert_eq!(st.revision, "LE20B04SIM7600M22");
    assert_eq!(st.imei.as_deref(), Some("490154203237518"));
    assert_eq!(st.operator.as_deref(), Some("TestNet"));
    assert_eq!(st.signal_dbm, Some(-73));
    assert!(st.registration.is_registered());
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// `Script` chaining helper for the status test, which needs `AT+CPIN?` before the network.
trait Pipe: Sized {
    fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
        f(self)
    }
}
impl Pipe for Script {}

#[tokio::test(start_paused = true)]
async fn detects_sim7600_from_cgmm() {
    let s =
        identify(Script::new(), "SIMCOM_SIM7600E-H").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+DDET=1").ok("AT+CMGL=4"));
    let cfg = Settings {
        profile: ProfileChoice::Auto,
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
}

fn expected_parts(text: &str) -> Vec<pdu::EncodedPdu> {
    pdu::encode_submit(
        "+4915112345678",
        text,
        &SubmitOptions {
            request_status_report: true,
            concat_reference: 0,
            max_parts: Some(10),
            validity_minutes: Some(24 * 60),
            smsc: None,
        },
    )
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn sends_multipart_sms_with_status_report_request() {
    let text = "Disk full on db1. ".repeat(12); // 216 GSM chars -> 2 parts
    let parts = expected_parts(&text);
    assert_eq!(parts.len(), 2);
    let script = generic_up(Script::new())
        .submit(
            &format!("AT+CMGS={}", parts[0].tpdu_len),
            &["+CMGS: 17", "OK"],
        )
        .submit(
            &format!("AT+CMGS={}", parts[1].tpdu_len),
            &["+CMGS: 18", "OK"],
        );
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let receipt = modem.send_sms("+4915112345678", &text).await.unwrap();
    assert_eq!(receipt.references, vec![17, 18]);
    assert_eq!(receipt.parts, 2);
    let fake = fakes.recv().await.unwrap();
    fake.done().await.unwrap();
    // The PDUs on the wire decode back to the page, with TP-SRR set.
    let received = fake.received();
    let mut joined = String::new();
    for hex in received.iter().filter(|l| l.starts_with("00")) {
        let pdu::Pdu::Submit(s) = pdu::decode(hex, pdu::Direction::MobileOriginated, true).unwrap()
        else {
            panic!("not a SUBMIT")
        };
        assert!(s.status_report_requested);
        assert_eq!(s.destination.number, "+4915112345678");
        joined.push_str(&s.text);
    }
    assert_eq!(joined, text);
}

#[tokio::test(start_paused = true)]
async fn cms_500_once_is_retried_and_succeeds() {
    let parts = expected_parts("page");
    let cmd = format!("AT+CMGS={}", parts[0].tpdu_len);
    let script = generic_up(Script::new())
        .submit(&cmd, &["+CMS ERROR: 500"])
        .submit(&cmd, &["+CMGS: 3", "OK"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let receipt = modem.send_sms("+4915112345678", "page").await.unwrap();
    assert_eq!(receipt.references, vec![3]);
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cms_500_every_time_is_a_retryable_error_naming_the_part() {
    let parts = expected_parts("page");
    let cmd = format!("AT+CMGS={}", parts[0].tpdu_len);
    let script = generic_up(Script::new())
        .submit(&cmd, &["+CMS ERROR: 500"])
        .submit(&cmd, &["+CMS ERROR: 500"])
        .submit(&cmd, &["+CMS ERROR: 500"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let err = modem.send_sms("+4915112345678", "page").await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "+CMS ERROR: 500 (unknown error) on AT+CMGS, part 1/1"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cms_330_is_not_retried() {
    let parts = expected_parts("page");
    let cmd = format!("AT+CMGS={}", parts[0].tpdu_len);
    let script = generic_up(Script::new()).submit(&cmd, &["+CMS ERROR: 330"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let err = modem.send_sms("+4915112345678", "page").await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("SMSC address unknown"));
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn pin_is_entered_once_and_accepted() {
    let s = identify(Script::new(), "GENERIC-LTE")
        .expect("AT+CPIN?", &["+CPIN: SIM PIN", "OK"])
        .ok("AT+CPIN=\"4711\"")
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+CMGL=4"));
    let cfg = Settings {
        pin: Some(Pin::new("4711")),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// The `+CPIN: SIM PIN` a modem sends as it boots, read after bring-up entered the PIN: the SIM
/// is asked, reads ready, and the PIN is not sent again (to an unlocked SIM it would be refused,
/// and a refused PIN is never retried: the modem would stay down for good).
#[tokio::test(start_paused = true)]
async fn a_stale_pin_notice_after_the_pin_went_in_is_checked_not_obeyed() {
    let s = identify(Script::new(), "GENERIC-LTE")
        .expect("AT+CPIN?", &["+CPIN: SIM PIN", "OK"])
        .ok("AT+CPIN=\"4711\"")
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+CMGL=4"))
        .send(&["+CPIN: SIM PIN"])
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let cfg = Settings {
        pin: Some(Pin::new("4711")),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = modem.health().borrow().clone();
    assert_eq!((h.state, h.reason.as_str()), (HealthState::Up, "ready"));
}

/// A stray `+CPIN: SIM PIN` on a box without a PIN: the SIM reads ready, the modem stays up.
#[tokio::test(start_paused = true)]
async fn a_stray_pin_notice_without_a_pin_configured_does_not_latch_down() {
    let script = generic_up(Script::new())
        .send(&["+CPIN: SIM PIN"])
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = modem.health().borrow().clone();
    assert_eq!((h.state, h.reason.as_str()), (HealthState::Up, "ready"));
}

#[tokio::test(start_paused = true)]
async fn rejected_pin_is_never_sent_again_not_even_after_reopen() {
    // First port: PIN rejected, then the health poll asks again and must not resend.
    let first = identify(Script::new(), "GENERIC-LTE")
        .expect("AT+CPIN?", &["+CPIN: SIM PIN", "OK"])
        .expect("AT+CPIN=\"0000\"", &["+CME ERROR: 16"])
        .expect("AT+CREG?", &["+CREG: 1,0", "OK"])
        .expect("AT+CEREG?", &["+CEREG: 1,0", "OK"])
        .expect("AT+CSQ", &["+CSQ: 20,99", "OK"])
        .expect("AT+CPIN?", &["+CPIN: SIM PIN", "OK"])
        .expect("AT+CREG?", &["+CREG: 1,0", "OK"])
        .expect("AT+CEREG?", &["+CEREG: 1,0", "OK"])
        .expect("AT+CSQ", &["+CSQ: 20,99", "OK"])
        .close();
    // Second port after the loss: still no PIN.
    let second = identify(Script::new(), "GENERIC-LTE")
        .expect("AT+CPIN?", &["+CPIN: SIM PIN", "OK"])
        .expect("AT+CREG?", &["+CREG: 1,0", "OK"])
        .expect("AT+CEREG?", &["+CEREG: 1,0", "OK"])
        .expect("AT+CSQ", &["+CSQ: 20,99", "OK"]);
    let cfg = Settings {
        pin: Some(Pin::new("0000")),
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(first), Ok(second)]);
    let mut health = modem.health();
    let h = wait_for(&mut health, HealthState::Down).await;
    let h = if h.reason == "starting" {
        tokio::time::timeout(
            Duration::from_secs(60),
            health.wait_for(|h| h.reason != "starting"),
        )
        .await
        .unwrap()
        .unwrap()
        .clone()
    } else {
        h
    };
    assert_eq!(h.reason, "SIM PIN rejected");
    let f1 = fakes.recv().await.unwrap();
    f1.done_within(Duration::from_secs(120)).await.unwrap();
    let f2 = fakes.recv().await.unwrap();
    f2.done().await.unwrap();
    let sent: usize = [f1.received(), f2.received()]
        .iter()
        .flatten()
        .filter(|l| l.starts_with("AT+CPIN="))
        .count();
    assert_eq!(sent, 1);
    // Sends are refused at once while the SIM is locked out.
    let err = modem.send_sms("+4915112345678", "x").await.unwrap_err();
    assert!(matches!(err, ModemError::Unavailable { .. }), "{err}");
}

#[tokio::test(start_paused = true)]
async fn port_loss_goes_down_at_once_and_reopens_with_backoff() {
    let first = generic_up(Script::new())
        .pause(Duration::from_secs(5))
        .close();
    let second = generic_up(Script::new().echo());
    let (modem, _events, mut fakes, _t) = start(
        settings(),
        vec![Ok(first), Err(io::ErrorKind::NotFound), Ok(second)],
    );
    let mut health = modem.health();
    wait_for(&mut health, HealthState::Up).await;
    let down = wait_for(&mut health, HealthState::Down).await;
    assert!(down.reason.starts_with("port lost"), "{}", down.reason);
    let err = modem.send_sms("+4915112345678", "x").await.unwrap_err();
    assert!(err.is_retryable());
    wait_for(&mut health, HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// With the default backoff, a port that stays gone for minutes is still tried every ten
/// seconds or so: once the modem is back, paging resumes within about one attempt's delay, not a
/// minute later.
#[tokio::test(start_paused = true)]
async fn a_long_lost_port_is_still_tried_every_few_seconds() {
    let first = generic_up(Script::new())
        .pause(Duration::from_secs(5))
        .close();
    let mut plan = vec![Ok(first)];
    plan.extend((0..10).map(|_| Err(io::ErrorKind::NotFound)));
    plan.push(Ok(generic_up(Script::new())));
    let cfg = Settings {
        reopen_min: Settings::new("x").reopen_min,
        reopen_max: Settings::new("x").reopen_max,
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, plan);
    let mut health = modem.health();
    wait_for(&mut health, HealthState::Up).await;
    wait_for(&mut health, HealthState::Down).await;
    let lost = tokio::time::Instant::now();
    wait_for(&mut health, HealthState::Up).await;
    // 11 attempts: after 1, 2, 4 and 8 s, then the cap seven times, each +-20 % (at most 102 s).
    let took = lost.elapsed();
    assert!(took < Duration::from_secs(105), "{took:?}");
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn silent_modem_is_resynced_then_soft_reset_and_reopened() {
    let first = generic_up(Script::new())
        .silent("AT+CREG?")
        .silent("AT")
        .silent("AT")
        .silent("AT+CFUN=1,1");
    let second = generic_up(Script::new());
    let cfg = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(first), Ok(second)]);
    let mut health = modem.health();
    wait_for(&mut health, HealthState::Up).await;
    let down = wait_for(&mut health, HealthState::Down).await;
    assert!(down.reason.contains("soft reset sent"), "{}", down.reason);
    wait_for(&mut health, HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cmti_is_read_decoded_emitted_then_deleted() {
    let script = generic_up(Script::new())
        .send(&["+CMTI: \"SM\",3"])
        .expect("AT+CMGR=3", &["+CMGR: 0,,30", DELIVER, "OK"])
        .ok("AT+CMGD=3");
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let ev = next_event(&mut events).await;
    let ModemEvent::SmsReceived {
        from,
        text,
        timestamp,
        alphanumeric,
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!(from, "+31641600986");
    assert_eq!(text, "How are you?");
    assert!(!alphanumeric);
    // The zone is the codec's business (tested there); the local time is as sent.
    assert_eq!(timestamp.naive_local().to_string(), "2002-08-26 19:37:41");
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn messages_stored_while_down_are_processed_at_start() {
    let s = identify(Script::new(), "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(
        configure(s)
            .expect("AT+CMGL=4", &["+CMGL: 1,1,,30", DELIVER, "OK"])
            .ok("AT+CMGD=1"),
    );
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let ev = next_event(&mut events).await;
    assert!(matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "How are you?"));
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn direct_status_report_becomes_a_delivery_report() {
    let script = generic_up(Script::new()).send(&["+CDS: 26", REPORT]);
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let ev = next_event(&mut events).await;
    assert_eq!(
        ev,
        ModemEvent::DeliveryReport {
            reference: 4,
            recipient: "+4915259911630".into(),
            delivered: true,
            outcome: DeliveryOutcome::Delivered,
            status: 0,
        }
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn busy_call() {
    let script = generic_up(Script::new()).expect("ATD+4915112345678;", &["BUSY"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let out = modem
        .call("+4915112345678", CallOptions::default())
        .await
        .unwrap();
    assert_eq!(out, CallOutcome::Busy);
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn unanswered_call_rings_out_and_hangs_up() {
    let mut script = generic_up(Script::new()).ok("ATD+4915112345678;");
    for _ in 0..3 {
        script = script.expect(
            "AT+CLCC",
            &["+CLCC: 1,0,3,0,0,\"+4915112345678\",145", "OK"],
        );
    }
    script = script.ok("ATH");
    let cfg = Settings {
        call_poll: Duration::from_secs(1),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let opts = CallOptions {
        ring_for: Duration::from_millis(3500),
        ..CallOptions::default()
    };
    let out = modem.call("+4915112345678", opts).await.unwrap();
    assert_eq!(out, CallOutcome::NoAnswer);
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn declined_after_alerting_is_rejected() {
    let script = generic_up(Script::new())
        .ok("ATD+4915112345678;")
        .expect(
            "AT+CLCC",
            &["+CLCC: 1,0,3,0,0,\"+4915112345678\",145", "OK"],
        )
        .send(&["NO CARRIER"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let out = modem
        .call("+4915112345678", CallOptions::default())
        .await
        .unwrap();
    assert_eq!(out, CallOutcome::Rejected);
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// `ATD` answered `OK`, the call was seen still dialling and then dropped without ever ringing:
/// the network would not set it up (a SIM without credit or voice), not a person's decline.
#[tokio::test(start_paused = true)]
async fn dropped_while_dialling_is_not_set_up() {
    let script = generic_up(Script::new())
        .ok("ATD+4915112345678;")
        .expect(
            "AT+CLCC",
            &["+CLCC: 1,0,2,0,0,\"+4915112345678\",145", "OK"],
        )
        .send(&["NO CARRIER"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let out = modem
        .call("+4915112345678", CallOptions::default())
        .await
        .unwrap();
    assert_eq!(out, CallOutcome::NotSetUp("no carrier".into()));
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn sim7600_call_speaks_and_takes_dtmf_1_as_ack() {
    let s =
        identify(Script::new(), "SIMCOM_SIM7600E-H").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+DDET=1").ok("AT+CMGL=4"))
        .ok("ATD+4915112345678;")
        .send(&["VOICE CALL: BEGIN"])
        .expect("AT+CTTS=2,\"Disk full on db1\"", &["OK", "+RXDTMF: 1"])
        .expect("AT+CHUP", &["OK", "VOICE CALL: END: 000010"]);
    let cfg = Settings {
        profile: ProfileChoice::Auto,
        ..settings()
    };
    let (modem, mut events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let opts = CallOptions {
        speak: Some("Disk full on db1".into()),
        ..CallOptions::default()
    };
    let out = modem.call("+4915112345678", opts).await.unwrap();
    assert_eq!(out, CallOutcome::Answered { dtmf: Some('1') });
    assert_eq!(next_event(&mut events).await, ModemEvent::Dtmf { key: '1' });
    assert_eq!(next_event(&mut events).await, ModemEvent::CallEnded);
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn incoming_call_is_announced_once_and_can_be_rejected() {
    let script = generic_up(Script::new())
        .send(&[
            "RING",
            "+CLIP: \"+4915112345678\",145,\"\",0,\"\",0",
            "RING",
        ])
        .ok("ATH");
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::IncomingCall {
            from: Some("+4915112345678".into())
        }
    );
    modem.reject_incoming().await.unwrap();
    assert_eq!(next_event(&mut events).await, ModemEvent::CallEnded);
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn shutdown_stops_the_task() {
    let (modem, _events, mut fakes, token) = start(settings(), vec![Ok(generic_up(Script::new()))]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    token.cancel();
    tokio::time::timeout(Duration::from_secs(5), modem.stopped())
        .await
        .unwrap();
    assert!(matches!(
        modem.status().await.unwrap_err(),
        ModemError::Stopped
    ));
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// A generic modem brought up in text mode (`modem.text_mode`), its storage empty.
fn text_mode_up() -> Script {
    let s = identify(Script::new(), "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    network(
        s.ok("AT+CMGF=1")
            .ok("AT+CSCS=\"GSM\"")
            .ok("AT+CSMP=49,167,0,0")
            .expect(
                "AT+CPMS=\"SM\",\"SM\",\"SM\"",
                &["+CPMS: 0,30,0,30,0,30", "OK"],
            )
            .ok("AT+CNMI=2,1,0,1,0")
            .ok("AT+CLIP=1")
            .ok("AT+CMGL=\"ALL\""),
    )
}

/// `modem.text_mode` on.
fn text_mode_settings() -> Settings {
    Settings {
        text_mode: true,
        ..settings()
    }
}

/// The text-mode read and delete of "ack 1" from +4915112345678, stored at index 2.
fn reads_ack_at_index_2_in_text_mode(script: Script) -> Script {
    script
        .expect(
            "AT+CMGR=2",
            &[
                "+CMGR: \"REC UNREAD\",\"+4915112345678\",\"\",\"26/11/22,10:00:00+04\"",
                "ack 1",
                "OK",
            ],
        )
        .ok("AT+CMGD=2")
}

#[tokio::test(start_paused = true)]
async fn text_mode_fallback_sends_and_receives() {
    let script = text_mode_up()
        .submit("AT+CMGS=\"+4915112345678\",145", &["+CMGS: 5", "OK"])
        .send(&["+CMTI: \"SM\",2"]);
    let script = reads_ack_at_index_2_in_text_mode(script);
    let (modem, mut events, mut fakes, _t) = start(text_mode_settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let receipt = modem.send_sms("+4915112345678", "db1 down").await.unwrap();
    assert_eq!(receipt.references, vec![5]);
    let ev = next_event(&mut events).await;
    let ModemEvent::SmsReceived {
        from,
        text,
        timestamp,
        ..
    } = ev
    else {
        panic!("{ev:?}")
    };
    assert_eq!((from.as_str(), text.as_str()), ("+4915112345678", "ack 1"));
    assert_eq!(timestamp.to_rfc3339(), "2026-11-22T10:00:00+01:00");
    let fake = fakes.recv().await.unwrap();
    fake.done().await.unwrap();
    assert!(fake.received().contains(&"db1 down".to_string()));
}

/// A reply whose whole text is `OK` (an acknowledgement, as people write it) arrives as that
/// text in text mode, not as an empty message followed by a stray result code.
#[tokio::test(start_paused = true)]
async fn a_text_mode_reply_reading_ok_arrives_as_ok() {
    let script = text_mode_up()
        .send(&["+CMTI: \"SM\",2"])
        .expect(
            "AT+CMGR=2",
            &[
                "+CMGR: \"REC UNREAD\",\"+4915112345678\",\"\",\"26/11/22,10:00:00+04\"",
                "OK",
                "OK",
            ],
        )
        .ok("AT+CMGD=2")
        .submit("AT+CMGS=\"+4915112345678\",145", &["+CMGS: 5", "OK"]);
    let (modem, mut events, mut fakes, _t) = start(text_mode_settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let ev = next_event(&mut events).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "OK"),
        "{ev:?}"
    );
    // The delete and the next command each got their own answer.
    let receipt = modem.send_sms("+4915112345678", "thanks").await.unwrap();
    assert_eq!(receipt.references, vec![5]);
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// In text mode a status report is one line: the line after it (here the next page's `+CMGS`
/// and then a new message's `+CMTI`) is not its body.
#[tokio::test(start_paused = true)]
async fn a_text_mode_status_report_is_one_line_and_takes_nothing_after_it() {
    let script = text_mode_up().send(&[
        "+CDS: 6,5,\"+4915112345678\",145,\"26/11/22,10:00:00+04\",\"26/11/22,10:00:05+04\",0",
        "+CMTI: \"SM\",2",
    ]);
    let script = reads_ack_at_index_2_in_text_mode(script);
    let (modem, mut events, mut fakes, _t) = start(text_mode_settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::DeliveryReport {
            reference: 5,
            recipient: "+4915112345678".into(),
            delivered: true,
            outcome: DeliveryOutcome::Delivered,
            status: 0,
        }
    );
    let ev = next_event(&mut events).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "ack 1"),
        "{ev:?}"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// An SMS page asked for while a voice page rings goes out beside the call at once; a status
/// request waits for the end of the call; a hang-up ends it.
#[tokio::test(start_paused = true)]
async fn during_a_ringing_call_an_sms_goes_out_at_once_a_status_waits_and_hang_up_ends_it() {
    let parts = expected_parts("now");
    let clcc = ["+CLCC: 1,0,3,0,0,\"+4915112345678\",145", "OK"];
    let script = generic_up(Script::new())
        .ok("ATD+4915112345678;")
        .expect("AT+CLCC", &clcc)
        .submit(
            &format!("AT+CMGS={}", parts[0].tpdu_len),
            &["+CMGS: 9", "OK"],
        )
        .expect("AT+CLCC", &clcc)
        .ok("ATH")
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"])
        .pipe(network);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let caller = modem.clone();
    let call =
        tokio::spawn(async move { caller.call("+4915112345678", CallOptions::default()).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let asked = tokio::time::Instant::now();
    let receipt = modem.send_sms("+4915112345678", "now").await.unwrap();
    assert_eq!(receipt.references, vec![9]);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert!(!call.is_finished(), "the call rings on");
    let status = {
        let m = modem.clone();
        tokio::spawn(async move { m.status().await })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!status.is_finished(), "a status request waits for the call");
    modem.hang_up().await.unwrap();
    assert_eq!(
        call.await.unwrap().unwrap(),
        CallOutcome::Failed("hung up on request".into())
    );
    assert_eq!(
        status.await.unwrap().unwrap().operator.as_deref(),
        Some("TestNet")
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// `/metrics` reads signal, registration and SIM state from the health watch (no AT at scrape).
#[tokio::test(start_paused = true)]
async fn health_carries_the_readings_for_metrics() {
    let script = generic_up(Script::new().echo())
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"])
        .pipe(network);
    let (modem, _events, _fakes, _t) = start(settings(), vec![Ok(script)]);
    let mut health = modem.health();
    let h = wait_for(&mut health, HealthState::Up).await;
    assert_eq!(h.signal_dbm, Some(-73));
    assert!(h.registered);
    assert!(h.sim_ready);
}

#[tokio::test(start_paused = true)]
async fn health_carries_operator_registration_sim_and_last_answer_for_the_status_page() {
    let (modem, _events, _fakes, _t) = start(settings(), vec![Ok(generic_up(Script::new()))]);
    let h = wait_for(&mut modem.health(), HealthState::Up).await;
    assert_eq!(h.operator.as_deref(), Some("TestNet"));
    assert!(h.registration.is_registered());
    assert_eq!(h.sim, SimState::Ready);
    assert_eq!(
        h.last_answer,
        Some(chrono::Utc.with_ymd_and_hms(2026, 11, 22, 3, 0, 0).unwrap())
    );
    assert_eq!(h.events_dropped, 0);
    assert_eq!(h.answer_bound, settings().answer_bound());
}

/// Delivery reports flooding in while nobody takes events (the daemon's consumer is busy with
/// the missed call): the driver still serves the reject, keeps the call events, and drops only
/// delivery reports, counting them.
#[tokio::test(start_paused = true)]
async fn a_report_flood_with_nobody_reading_never_blocks_requests_and_drops_reports_first() {
    const REPORTS: usize = 1200;
    let mut lines = vec!["RING", "+CLIP: \"+4915112345678\",145,\"\",0,\"\",0"];
    for _ in 0..REPORTS {
        lines.extend(["+CDS: 26", REPORT]);
    }
    let script = generic_up(Script::new()).send(&lines).ok("ATH");
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let health = modem.health();
    wait_for(&mut modem.health(), HealthState::Up).await;
    // Wait until the flood has overrun channel and backlog.
    tokio::time::timeout(Duration::from_secs(60), async {
        while health.borrow().events_dropped == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the flood never overran the backlog");
    // Nothing has been read: the reject must still go through.
    tokio::time::timeout(Duration::from_secs(30), modem.reject_incoming())
        .await
        .expect("the driver is blocked on its event queue")
        .unwrap();
    fakes.recv().await.unwrap().done().await.unwrap();

    let mut got = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(1), events.recv()).await {
        got.push(ev);
    }
    let calls = got
        .iter()
        .filter(|e| matches!(e, ModemEvent::IncomingCall { .. }))
        .count();
    let ended = got
        .iter()
        .filter(|e| matches!(e, ModemEvent::CallEnded))
        .count();
    let reports = got
        .iter()
        .filter(|e| matches!(e, ModemEvent::DeliveryReport { .. }))
        .count();
    assert_eq!((calls, ended), (1, 1), "call events are never dropped");
    assert_eq!(got.len(), EVENT_QUEUE + BACKLOG_LIMIT);
    let dropped = health.borrow().events_dropped as usize;
    assert_eq!(
        reports + dropped,
        REPORTS,
        "every report is either handed over or counted"
    );
    assert_eq!(dropped, REPORTS + 2 - EVENT_QUEUE - BACKLOG_LIMIT);
    // The call came first and stays first.
    assert!(matches!(got[0], ModemEvent::IncomingCall { .. }));
}

/// An idle driver still feeds its heartbeat: the idle wait is bounded by the heartbeat's
/// idle bound (real time: the heartbeat's clock is not tokio's).
#[tokio::test]
async fn an_idle_driver_keeps_its_heartbeat_fed() {
    let hb = crate::supervisor::Heartbeat::new("modem", Duration::from_millis(300));
    let s = Settings {
        heartbeat: hb.clone(),
        ..settings()
    };
    let (modem, _events, _fakes, _t) = start(s, vec![Ok(generic_up(Script::new()))]);
    tokio::time::timeout(
        Duration::from_secs(10),
        wait_for(&mut modem.health(), HealthState::Up),
    )
    .await
    .unwrap();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(hb.late(), None, "idle driver stopped beating");
    }
}

/// A stored SMS whose event the full backlog refuses is not lost: it is not deleted, and the
/// next health poll after the backlog drained lists storage, hands it over and deletes it.
/// Only the directly routed message that found no room is counted as dropped.
#[tokio::test(start_paused = true)]
async fn a_stored_sms_refused_by_a_full_backlog_stays_on_the_sim_and_is_read_again() {
    let direct = EVENT_QUEUE + BACKLOG_LIMIT + 1;
    let mut lines = Vec::new();
    for _ in 0..direct {
        lines.extend(["+CMT: ,30", DELIVER]);
    }
    let script = generic_up(Script::new())
        .send(&lines)
        .send(&["+CMTI: \"SM\",5"])
        // Read, refused, not deleted.
        .expect("AT+CMGR=5", &["+CMGR: 0,,30", DELIVER, "OK"])
        // The next health poll, then storage listed again: now it fits and is deleted.
        .pipe(network)
        .expect("AT+CNMI?", &["+CNMI: 2,1,0,1,0", "OK"])
        .expect("AT+CMGL=4", &["+CMGL: 5,1,,30", DELIVER, "OK"])
        .ok("AT+CMGD=5");
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let health = modem.health();
    wait_for(&mut modem.health(), HealthState::Up).await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while health.borrow().events_dropped == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the direct messages never overran the backlog");
    let mut received = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(7200), events.recv()).await {
        assert!(matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "How are you?"));
        received += 1;
        if received == EVENT_QUEUE + BACKLOG_LIMIT + 1 {
            break;
        }
    }
    assert_eq!(
        received,
        EVENT_QUEUE + BACKLOG_LIMIT + 1,
        "the stored one came back"
    );
    assert_eq!(
        health.borrow().events_dropped,
        1,
        "only the direct one was lost"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// Events backlogged before a call keep flowing while it rings: the call's wait hands them
/// over as the daemon makes room, instead of holding them until the call is over.
#[tokio::test(start_paused = true)]
async fn backlogged_events_flow_while_a_call_rings() {
    const REPORTS: usize = EVENT_QUEUE + 36;
    let mut lines = Vec::new();
    for _ in 0..REPORTS {
        lines.extend(["+CDS: 26", REPORT]);
    }
    let mut script = generic_up(Script::new())
        .send(&lines)
        .ok("ATD+4915112345678;");
    for _ in 0..3 {
        script = script.expect(
            "AT+CLCC",
            &["+CLCC: 1,0,3,0,0,\"+4915112345678\",145", "OK"],
        );
    }
    script = script.ok("ATH");
    let cfg = Settings {
        call_poll: Duration::from_secs(1),
        ..settings()
    };
    let (modem, mut events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    // Let the driver read the whole burst: the channel fills, the rest waits in the backlog.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let call = tokio::spawn({
        let modem = modem.clone();
        async move {
            let opts = CallOptions {
                ring_for: Duration::from_millis(3500),
                ..CallOptions::default()
            };
            modem.call("+4915112345678", opts).await
        }
    });
    for n in 0..REPORTS {
        let ev = next_event(&mut events).await;
        assert!(
            matches!(ev, ModemEvent::DeliveryReport { .. }),
            "event {n}: {ev:?}"
        );
    }
    assert!(
        !call.is_finished(),
        "the backlog was only handed over after the call"
    );
    assert_eq!(call.await.unwrap().unwrap(), CallOutcome::NoAnswer);
    assert_eq!(modem.health().borrow().events_dropped, 0);
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// A module that restarts in place without a `RDY` (a SIM800 on autobaud, a torn banner) comes
/// back with factory settings and stays registered. The health poll reads the settings back and
/// brings it up again, so caller ID and message indications are set once more.
#[tokio::test(start_paused = true)]
async fn a_modem_that_restarted_without_announcing_it_is_brought_up_again() {
    let poll = |s: Script, creg: &str, cnmi: &str| {
        s.expect("AT+CREG?", &[creg, "OK"])
            .expect("AT+CEREG?", &["+CEREG: 1,1", "OK"])
            .expect("AT+CSQ", &["+CSQ: 20,99", "OK"])
            .expect("AT+COPS?", &["+COPS: 0,0,\"TestNet\",7", "OK"])
            .expect("AT+CNMI?", &[cnmi, "OK"])
    };
    // First poll: settings kept. Second: registration reports off (factory `<n>` 0): bring-up
    // again. Third: kept. Fourth: reports on but indications at factory values: bring-up again.
    let script = generic_up(Script::new());
    let script = poll(script, "+CREG: 1,1", "+CNMI: 2,1,0,1,0");
    let script = generic_up(
        script
            .expect("AT+CREG?", &["+CREG: 0,1", "OK"])
            .expect("AT+CEREG?", &["+CEREG: 1,1", "OK"])
            .expect("AT+CSQ", &["+CSQ: 20,99", "OK"])
            .expect("AT+COPS?", &["+COPS: 0,0,\"TestNet\",7", "OK"]),
    );
    let script = poll(script, "+CREG: 1,1", "+CNMI: 2,1,0,1,0");
    let script = generic_up(poll(script, "+CREG: 1,1", "+CNMI: 1,0,0,0,0"));
    let s = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(s, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes
        .recv()
        .await
        .unwrap()
        .done_within(Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(modem.health().borrow().state, HealthState::Up);
}

/// A firmware that shows a setting otherwise than it was written (here `AT+CNMI?` never says
/// what was set) is brought up again once, then no longer checked: not a bring-up every poll.
#[tokio::test(start_paused = true)]
async fn a_modem_that_reads_settings_back_otherwise_is_brought_up_once_only() {
    let poll = |s: Script| network(s).expect("AT+CNMI?", &["+CNMI: 0,0,0,0,0", "OK"]);
    let script = generic_up(Script::new());
    let script = generic_up(poll(script));
    // Lost again right after bring-up: from here on the polls read no settings back.
    let script = network(network(poll(script)));
    let s = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(s, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes
        .recv()
        .await
        .unwrap()
        .done_within(Duration::from_secs(600))
        .await
        .unwrap();
    assert_eq!(modem.health().borrow().state, HealthState::Up);
}

/// A modem that takes message indications but no status reports (`ds` 1 refused) is
/// configured without them rather than not at all.
#[tokio::test(start_paused = true)]
async fn indications_without_status_reports_are_taken() {
    let s = identify(Script::new(), "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let s = s
        .ok("AT+CMGF=0")
        .expect(
            "AT+CPMS=\"SM\",\"SM\",\"SM\"",
            &["+CPMS: 0,30,0,30,0,30", "OK"],
        )
        .expect("AT+CNMI=2,1,0,1,0", &["+CMS ERROR: 303"])
        .expect("AT+CNMI=1,1,0,1,0", &["+CMS ERROR: 303"])
        .ok("AT+CNMI=2,1,0,0,0")
        .ok("AT+CLIP=1")
        .ok("AT+CMGL=4");
    let script = network(s)
        .pipe(network)
        .expect("AT+CNMI?", &["+CNMI: 2,1,0,0,0", "OK"]);
    let cfg = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes
        .recv()
        .await
        .unwrap()
        .done_within(Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(modem.health().borrow().state, HealthState::Up);
}

/// Right after boot some modems refuse `AT+CNMI` (`+CMS ERROR: 302`) until their message store
/// is ready. Paging still works, but acks by SMS would go unseen: health says Degraded, and the
/// next poll sets the indications again.
#[tokio::test(start_paused = true)]
async fn indications_refused_at_boot_are_degraded_and_set_again() {
    let s = identify(Script::new(), "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let s = s
        .ok("AT+CMGF=0")
        .expect("AT+CPMS=\"SM\",\"SM\",\"SM\"", &["+CMS ERROR: 314"])
        .expect("AT+CNMI=2,1,0,1,0", &["+CMS ERROR: 302"])
        .expect("AT+CNMI=1,1,0,1,0", &["+CMS ERROR: 302"])
        .expect("AT+CNMI=2,1,0,0,0", &["+CMS ERROR: 302"])
        .expect("AT+CNMI=1,1,0,0,0", &["+CMS ERROR: 302"])
        .ok("AT+CLIP=1")
        // Storage is listed all the same: acks are read by polling meanwhile.
        .ok("AT+CMGL=4");
    // The poll: indications missing, so SMS is configured again before the network is read.
    let script = network(configure(network(s)).ok("AT+CMGL=4"))
        .expect("AT+CNMI?", &["+CNMI: 2,1,0,1,0", "OK"]);
    let cfg = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, _events, mut fakes, _t) = start(cfg, vec![Ok(script)]);
    let mut health = modem.health();
    wait_for(&mut health, HealthState::Degraded).await;
    assert!(
        health.borrow().reason.contains("AT+CNMI"),
        "{:?}",
        health.borrow().reason
    );
    wait_for(&mut health, HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// A vendor line between a stored message's header and its PDU (SIM800's `*PSUTTZ`, `DST`) is
/// not taken for the PDU: the message is read, handed over and only then deleted.
#[tokio::test(start_paused = true)]
async fn a_vendor_line_inside_a_read_message_is_passed_over() {
    let script = generic_up(Script::new())
        .send(&["+CMTI: \"SM\",4"])
        .expect(
            "AT+CMGR=4",
            &[
                "+CMGR: 0,,30",
                "*PSUTTZ: 2026,12,7,12,0,0,\"+4\",0",
                DELIVER,
                "OK",
            ],
        )
        .ok("AT+CMGD=4");
    let (modem, mut events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let ev = next_event(&mut events).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "How are you?"),
        "{ev:?}"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// A handled message the modem would not delete is not handed over again (and its sender not
/// answered again) each time storage is listed.
#[tokio::test(start_paused = true)]
async fn a_message_the_modem_would_not_delete_is_not_handled_twice() {
    let s = identify(Script::new(), "GENERIC-LTE").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(
        configure(s)
            .expect("AT+CMGL=4", &["+CMGL: 5,1,,30", DELIVER, "OK"])
            .expect("AT+CMGD=5", &["ERROR"]),
    )
    .send(&["+CMTI: \"SM\",6"])
    .expect("AT+CMGR=6", &["+CMS ERROR: 314"])
    .pipe(network)
    .expect("AT+CNMI?", &["+CNMI: 2,1,0,1,0", "OK"])
    .expect(
        "AT+CMGL=4",
        &["+CMGL: 5,1,,30", DELIVER, "+CMGL: 6,0,,30", DELIVER, "OK"],
    )
    .ok("AT+CMGD=6");
    let s = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, mut events, mut fakes, _t) = start(s, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    for _ in 0..2 {
        let ev = next_event(&mut events).await;
        assert!(matches!(ev, ModemEvent::SmsReceived { .. }), "{ev:?}");
    }
    fakes.recv().await.unwrap().done().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_secs(1), events.recv())
            .await
            .is_err(),
        "message 5 was handed over twice"
    );
}

/// A message whose read is refused (`+CMS ERROR: 314`, SIM busy) stays stored and is read by
/// the next health poll's listing, not left until the next restart.
#[tokio::test(start_paused = true)]
async fn a_message_whose_read_failed_is_read_at_the_next_poll() {
    let script = generic_up(Script::new())
        .send(&["+CMTI: \"SM\",5"])
        .expect("AT+CMGR=5", &["+CMS ERROR: 314"])
        .pipe(network)
        .expect("AT+CNMI?", &["+CNMI: 2,1,0,1,0", "OK"])
        // A vendor line inside a listing is passed over too.
        .expect("AT+CMGL=4", &["+CMGL: 5,0,,30", "DST: 1", DELIVER, "OK"])
        .ok("AT+CMGD=5");
    let s = Settings {
        health_interval: Duration::from_secs(30),
        ..settings()
    };
    let (modem, mut events, mut fakes, _t) = start(s, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let ev = next_event(&mut events).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "How are you?"),
        "{ev:?}"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_modem_refusing_at_echo_off_cmee_and_cereg_still_comes_up() {
    let s = Script::new()
        .expect("AT", &["ERROR"])
        .expect("ATE0", &["ERROR"])
        .expect("AT+CMEE=1", &["ERROR"])
        .expect("AT+CGMI", &["Emulated", "OK"])
        .expect("AT+CGMM", &["ODD-FW", "OK"])
        .expect("AT+CGMR", &["1.0", "OK"])
        .expect("AT+CGSN", &["490154203237518", "OK"])
        .ok("AT+CREG=1")
        .expect("AT+CEREG=1", &["ERROR"])
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+CMGL=4"));
    let logs = CapturedLogs::default();
    // With a single dispatcher registered, tracing-core asks only the calling thread's default
    // whether a call site is wanted: another test's thread meeting one of the driver's call
    // sites first would cache "never" for it, and this test would miss the line. A second
    // registered dispatcher makes every thread ask all of them.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let h = wait_for(&mut modem.health(), HealthState::Up).await;
    assert_eq!(h.reason, "ready");
    fakes.recv().await.unwrap().done().await.unwrap();
    // One line per refused setting, naming the modem and what it answered.
    let text = logs.text();
    for command in ["ATE0", "AT+CMEE=1", "AT+CEREG=1"] {
        let line = text
            .lines()
            .find(|l| l.contains("refused an optional setting") && l.contains(command))
            .unwrap_or_else(|| panic!("no log line for {command}:\n{text}"));
        assert!(line.contains("Emulated ODD-FW"), "{line}");
        assert!(line.contains("answer=ERROR"), "{line}");
    }
    assert!(
        !text.contains("AT+CREG=1 "),
        "AT+CREG=1 was accepted: {text}"
    );
}

/// Log lines written while a test runs (the driver runs on the test's thread).
#[derive(Clone, Default)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLogs {
    type Writer = CapturedLogs;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_cme_error_to_a_bare_at_is_an_answer_too() {
    let s = Script::new()
        .expect("AT", &["+CME ERROR: 100"])
        .ok("ATE0")
        .ok("AT+CMEE=1")
        .expect("AT+CGMI", &["x", "OK"])
        .expect("AT+CGMM", &["GENERIC-LTE", "OK"])
        .expect("AT+CGMR", &["1", "OK"])
        .expect("AT+CGSN", &["1", "OK"])
        .ok("AT+CREG=1")
        .ok("AT+CEREG=1")
        .expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = network(configure(s).ok("AT+CMGL=4"));
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// One exchange with a modem that echoes every command and cannot be told to stop.
fn echoed(s: Script, command: &str, lines: &[&str]) -> Script {
    let mut bytes = format!("{command}\r").into_bytes();
    for l in lines {
        bytes.extend_from_slice(format!("\r\n{l}\r\n").as_bytes());
    }
    s.raw(command, &bytes)
}

#[tokio::test(start_paused = true)]
async fn a_modem_without_echo_control_comes_up_and_answers_status() {
    let steps: &[(&str, &[&str])] = &[
        ("AT", &["OK"]),
        ("ATE0", &["ERROR"]),
        ("AT+CMEE=1", &["OK"]),
        ("AT+CGMI", &["Echoer", "OK"]),
        ("AT+CGMM", &["E-1", "OK"]),
        ("AT+CGMR", &["r1", "OK"]),
        ("AT+CGSN", &["490154203237518", "OK"]),
        ("AT+CREG=1", &["OK"]),
        ("AT+CEREG=1", &["OK"]),
        ("AT+CPIN?", &["+CPIN: READY", "OK"]),
        ("AT+CMGF=0", &["OK"]),
        (
            "AT+CPMS=\"SM\",\"SM\",\"SM\"",
            &["+CPMS: 0,30,0,30,0,30", "OK"],
        ),
        ("AT+CNMI=2,1,0,1,0", &["OK"]),
        ("AT+CLIP=1", &["OK"]),
        ("AT+CMGL=4", &["OK"]),
        ("AT+CREG?", &["+CREG: 1,1", "OK"]),
        ("AT+CEREG?", &["+CEREG: 1,1", "OK"]),
        ("AT+CSQ", &["+CSQ: 20,99", "OK"]),
        ("AT+COPS?", &["+COPS: 0,0,\"TestNet\",7", "OK"]),
        // `status` asks again.
        ("AT+CPIN?", &["+CPIN: READY", "OK"]),
        ("AT+CREG?", &["+CREG: 1,5", "OK"]),
        ("AT+CEREG?", &["+CEREG: 1,1", "OK"]),
        ("AT+CSQ", &["+CSQ: 21,99", "OK"]),
        ("AT+COPS?", &["+COPS: 0,0,\"EchoNet\",7", "OK"]),
    ];
    let script = steps
        .iter()
        .fold(Script::new(), |s, (c, l)| echoed(s, c, l));
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let st = modem.status().await.unwrap();
    assert_eq!(st.model, "E-1");
    assert_eq!(st.operator.as_deref(), Some("EchoNet"));
    assert_eq!(st.signal_dbm, Some(-71));
    fakes.recv().await.unwrap().done().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_sms_mode_fails_bring_up_saying_what_the_modem_answered() {
    let s = identify(Script::new(), "NO-PDU").expect("AT+CPIN?", &["+CPIN: READY", "OK"]);
    let script = s.expect("AT+CMGF=0", &["+CME ERROR: 4"]);
    let (modem, _events, mut fakes, _t) = start(settings(), vec![Ok(script)]);
    let mut health = modem.health();
    let h = tokio::time::timeout(
        Duration::from_secs(60),
        health.wait_for(|h| h.reason.contains("AT+CMGF")),
    )
    .await
    .expect("no health change naming AT+CMGF=0")
    .unwrap()
    .clone();
    assert_eq!(h.state, HealthState::Down);
    assert_eq!(
        h.reason,
        "bring-up failed: SIMCOM INCORPORATED NO-PDU answered +CME ERROR: 4 (operation not \
         supported) to AT+CMGF=0: cannot set SMS PDU mode"
    );
    fakes.recv().await.unwrap().done().await.unwrap();
}

/// One incoming call shown with `clip`; the caller as the daemon will read it.
async fn caller_of(clip: &str) -> Option<crate::config::PhoneNumber> {
    let script = generic_up(Script::new()).send(&["RING", clip]);
    let (modem, mut events, _fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    match next_event(&mut events).await {
        ModemEvent::IncomingCall { from } => {
            crate::config::PhoneNumber::normalize(from.as_deref()?, "49")
        }
        other => panic!("expected an incoming call, got {other:?}"),
    }
}

/// A modem that sends no end notice when a caller gives up (a missed call): the next call, a
/// while later, is still announced.
#[tokio::test(start_paused = true)]
async fn a_call_that_rang_out_silently_does_not_hide_the_next_one() {
    let clip = "+CLIP: \"+4915112345678\",145,\"\",0,\"\",0";
    let script = generic_up(Script::new())
        .send(&["RING", clip])
        .pause(Duration::from_secs(30))
        .send(&["RING", clip]);
    let (modem, mut events, _fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let caller = Some("+4915112345678".to_string());
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::IncomingCall {
            from: caller.clone()
        }
    );
    assert_eq!(next_event(&mut events).await, ModemEvent::CallEnded);
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::IncomingCall { from: caller }
    );
}

/// `RING`s that arrive during a slow SMS submit wait in the queue; handled after it, they are
/// judged by when they came, so the ringing call is not taken for a new one and announced twice.
#[tokio::test(start_paused = true)]
async fn rings_queued_behind_a_slow_submit_do_not_announce_the_call_twice() {
    let clip = "+CLIP: \"+4915112345678\",145,\"\",0,\"\",0";
    let parts = expected_parts("db1 down");
    let mut script = generic_up(Script::new())
        .send(&["RING", clip])
        .submit_silent(&format!("AT+CMGS={}", parts[0].tpdu_len));
    for _ in 0..5 {
        script = script.pause(Duration::from_secs(5)).send(&["RING", clip]);
    }
    let script = script.send(&["+CMGS: 9", "OK"]);
    let settings = Settings {
        sms_timeout: Duration::from_secs(60),
        ..settings()
    };
    let (modem, mut events, _fakes, _t) = start(settings, vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    let caller = Some("+4915112345678".to_string());
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::IncomingCall { from: caller }
    );
    let receipt = modem.send_sms("+4915112345678", "db1 down").await.unwrap();
    assert_eq!(receipt.references, vec![9]);
    let more = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
    assert!(more.is_err(), "one call announced again: {more:?}");
}

#[tokio::test(start_paused = true)]
async fn caller_id_is_read_by_its_number_type() {
    let want = crate::config::PhoneNumber::parse_e164("+4915112345678");
    // International without '+' (145), national without trunk prefix (161), national with it
    // under "unknown" (129), and international with '+' under 129.
    for clip in [
        "+CLIP: \"4915112345678\",145,\"\",0,\"\",0",
        "+CLIP: \"15112345678\",161,\"\",0,\"\",0",
        "+CLIP: \"015112345678\",129,\"\",0,\"\",0",
        "+CLIP: \"+4915112345678\",129,\"\",0,\"\",0",
    ] {
        assert_eq!(caller_of(clip).await, want, "{clip}");
    }
    // A withheld number stays unknown.
    let script = generic_up(Script::new()).send(&["+CLIP: \"\",128,\"\",0,\"\",1"]);
    let (modem, mut events, _fakes, _t) = start(settings(), vec![Ok(script)]);
    wait_for(&mut modem.health(), HealthState::Up).await;
    assert_eq!(
        next_event(&mut events).await,
        ModemEvent::IncomingCall { from: None }
    );
}

#[test]
fn only_the_first_start_announcement_after_opening_is_the_boot() {
    let mut awaiting = true;
    assert!(is_boot_announcement(&Urc::Ready, &mut awaiting));
    // A second one is a restart, and so is one after a power-down notice.
    assert!(!is_boot_announcement(&Urc::Ready, &mut awaiting));
    let mut awaiting = true;
    assert!(!is_boot_announcement(&Urc::PowerDown, &mut awaiting));
    assert!(!is_boot_announcement(&Urc::Ready, &mut awaiting));
}

/// A modem that stays away (unplugged overnight) is said to be down when it goes, and then
/// again every 30th retry, not at every retry: /healthz and the LED carry the state meanwhile.
#[tokio::test(start_paused = true)]
async fn a_modem_that_stays_away_is_not_logged_at_every_retry() {
    let logs = CapturedLogs::default();
    // See a_modem_refusing_at_echo_off_cmee_and_cereg_still_comes_up for the second dispatcher.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let plan: Vec<_> = (0..400).map(|_| Err(io::ErrorKind::NotFound)).collect();
    let (modem, _events, _fakes, _t) = start(settings(), plan);
    let mut health = modem.health();
    // 40 to 60 failed opens, at most about 2 s apart.
    tokio::time::sleep(Duration::from_secs(100)).await;
    assert_eq!(health.borrow_and_update().state, HealthState::Down);
    let text = logs.text();
    let down: Vec<_> = text
        .lines()
        .filter(|l| l.contains("modem down reason"))
        .collect();
    assert!((2..=3).contains(&down.len()), "{text}");
    for (line, attempt) in down
        .iter()
        .zip(["attempt=1 ", "attempt=30 ", "attempt=60 "])
    {
        assert!(line.contains(attempt), "{line}");
    }
}
