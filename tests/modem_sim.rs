//! The modem driver against the built-in simulator through a real PTY: SMS send (single,
//! multipart, Unicode), receive (direct, multipart, stored while down), delivery reports,
//! calls (answered, busy, no answer, rejected, DTMF ack), and each simulator fault with the
//! recovery the driver must make.
//!
//! Real time with the simulator's zero-delay profile; timeouts are short so the suite is quick.

use std::path::PathBuf;
use std::time::Duration;

use pagerbox::modem::sim::{
    CallBehaviour, DeliverOptions, Fault, NetworkEntry, SimConfig, SimHandle, SimProfile,
    Simulator, UrcPlacement,
};
use pagerbox::modem::{
    CallOptions, CallOutcome, HealthState, Modem, ModemEvent, ProfileChoice, Settings,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const NUMBER: &str = "+4915112345678";

struct Rig {
    _dir: tempfile::TempDir,
    sim: SimHandle,
    modem: Modem,
    events: mpsc::Receiver<ModemEvent>,
    token: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

fn settings(device: PathBuf) -> Settings {
    Settings {
        profile: ProfileChoice::Auto,
        command_timeout: Duration::from_secs(1),
        sms_timeout: Duration::from_secs(3),
        health_interval: Duration::from_millis(500),
        reopen_min: Duration::from_millis(100),
        reopen_max: Duration::from_millis(800),
        call_poll: Duration::from_millis(100),
        part_retry_delay: Duration::from_millis(50),
        ..Settings::new(device)
    }
}

async fn start_sim(profile: SimProfile) -> (tempfile::TempDir, SimHandle) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig::fast(profile, dir.path().join("modem"));
    let sim = Simulator::start(cfg).await.expect("simulator starts");
    (dir, sim)
}

async fn rig(profile: SimProfile) -> Rig {
    let (dir, sim) = start_sim(profile).await;
    attach(dir, sim, |_| {}).await
}

async fn attach(dir: tempfile::TempDir, sim: SimHandle, tweak: impl FnOnce(&mut Settings)) -> Rig {
    let mut s = settings(sim.pty_path());
    tweak(&mut s);
    let token = CancellationToken::new();
    let (modem, events) = Modem::spawn(s, token.clone());
    let r = Rig {
        _dir: dir,
        sim,
        modem,
        events,
        token,
    };
    wait_health(&r.modem, HealthState::Up, Duration::from_secs(20)).await;
    r
}

async fn wait_health(modem: &Modem, state: HealthState, within: Duration) -> String {
    let mut rx = modem.health();
    let got = tokio::time::timeout(within, rx.wait_for(|h| h.state == state))
        .await
        .map(|r| r.map(|h| h.reason.clone()));
    match got {
        Ok(Ok(reason)) => reason,
        Ok(Err(_)) => panic!("modem task gone"),
        Err(_) => panic!(
            "health never became {state:?} within {within:?}; last {:?}",
            *rx.borrow()
        ),
    }
}

async fn next_event(events: &mut mpsc::Receiver<ModemEvent>, within: Duration) -> ModemEvent {
    tokio::time::timeout(within, events.recv())
        .await
        .expect("no event in time")
        .expect("event channel closed")
}

/// Skips events until one matches.
async fn event_matching(
    events: &mut mpsc::Receiver<ModemEvent>,
    within: Duration,
    pred: impl Fn(&ModemEvent) -> bool,
) -> ModemEvent {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let ev = next_event(events, left).await;
        if pred(&ev) {
            return ev;
        }
    }
}

async fn logged_sms(sim: &SimHandle, text: &str) -> (Vec<u8>, u8, bool) {
    let entry = sim
        .wait_for_log(
            |e| matches!(e, NetworkEntry::Sms { text: t, .. } if t == text),
            Duration::from_secs(5),
        )
        .await
        .expect("message reached the network");
    match entry {
        NetworkEntry::Sms {
            to,
            message_references,
            parts,
            status_report_requested,
            ..
        } => {
            assert_eq!(to, NUMBER);
            (message_references, parts, status_report_requested)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn sends_single_and_multipart_unicode_sms() {
    for profile in [
        SimProfile::Generic,
        SimProfile::Sim800,
        SimProfile::Sim7600,
        SimProfile::Ec25,
    ] {
        let r = rig(profile).await;
        let receipt = r.modem.send_sms(NUMBER, "db1 disk full").await.unwrap();
        let (refs, parts, srr) = logged_sms(&r.sim, "db1 disk full").await;
        assert_eq!((receipt.references.clone(), receipt.parts), (refs, 1));
        assert_eq!(parts, 1);
        assert!(srr, "status report requested");

        // Extension characters and an emoji across part boundaries.
        let long = "€ {alert} ✅ ".repeat(20) + "🚨 end";
        let receipt = r.modem.send_sms(NUMBER, &long).await.unwrap();
        let (refs, parts, _) = logged_sms(&r.sim, &long).await;
        assert_eq!(receipt.references, refs);
        assert_eq!(usize::from(parts), receipt.parts);
        assert!(receipt.parts > 1);
    }
}

#[tokio::test]
async fn receives_sms_direct_multipart_and_inside_a_response() {
    let mut r = rig(SimProfile::Sim7600).await;
    r.sim
        .deliver_sms(NUMBER, "ACK 42", DeliverOptions::default())
        .await
        .unwrap();
    let ev = next_event(&mut r.events, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref from, ref text, alphanumeric: false, .. }
            if from == NUMBER && text == "ACK 42"),
        "{ev:?}"
    );

    let long = "Привет, это длинный ответ на страницу. ".repeat(6);
    r.sim
        .deliver_sms(NUMBER, &long, DeliverOptions::default())
        .await
        .unwrap();
    let ev = next_event(&mut r.events, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if *text == long),
        "{ev:?}"
    );

    // The +CMTI lands in the middle of the next multi-line response (a health poll).
    let opts = DeliverOptions {
        placement: UrcPlacement::InsideNextResponse,
        ..DeliverOptions::default()
    };
    r.sim.deliver_sms("Alerts", "ack 7", opts).await.unwrap();
    let ev = next_event(&mut r.events, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref from, ref text, alphanumeric: true, .. }
            if from == "Alerts" && text == "ack 7"),
        "{ev:?}"
    );
}

#[tokio::test]
async fn messages_stored_while_the_daemon_was_down_are_read_at_start() {
    let (dir, sim) = start_sim(SimProfile::Ec25).await;
    sim.deliver_sms(NUMBER, "ack 1 while you slept", DeliverOptions::default())
        .await
        .unwrap();
    let mut r = attach(dir, sim, |_| {}).await;
    let ev = next_event(&mut r.events, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "ack 1 while you slept"),
        "{ev:?}"
    );
}

#[tokio::test]
async fn delivery_report_matches_the_message_reference() {
    for profile in [SimProfile::Sim800, SimProfile::Sim7600] {
        let mut r = rig(profile).await;
        let receipt = r.modem.send_sms(NUMBER, "page with report").await.unwrap();
        let ev = event_matching(&mut r.events, Duration::from_secs(5), |e| {
            matches!(e, ModemEvent::DeliveryReport { .. })
        })
        .await;
        let ModemEvent::DeliveryReport {
            reference,
            recipient,
            delivered,
            ..
        } = ev
        else {
            unreachable!()
        };
        assert_eq!(vec![reference], receipt.references);
        assert_eq!(recipient, NUMBER);
        assert!(delivered);
    }
}

fn quick_call() -> CallOptions {
    CallOptions {
        ring_for: Duration::from_secs(5),
        speak: Some("Disk full on db1. Press 1 to acknowledge.".into()),
        repeat: 1,
        listen_dtmf: true,
    }
}

#[tokio::test]
async fn call_outcomes_answered_busy_no_answer_rejected() {
    let r = rig(SimProfile::Generic).await;
    let cases = [
        (
            CallBehaviour::AnswerAfter(Duration::from_millis(300)),
            CallOutcome::Answered { dtmf: None },
        ),
        (CallBehaviour::Busy, CallOutcome::Busy),
        (CallBehaviour::NoAnswer, CallOutcome::NoAnswer),
        (CallBehaviour::Reject, CallOutcome::Rejected),
    ];
    for (behaviour, expected) in cases {
        r.sim.set_call_behaviour(behaviour).await.unwrap();
        let out = r.modem.call(NUMBER, quick_call()).await.unwrap();
        assert_eq!(out, expected, "{behaviour:?}");
    }
}

#[tokio::test]
async fn unanswered_call_is_hung_up_after_ring_for() {
    let r = rig(SimProfile::Sim7600).await;
    r.sim
        .set_call_behaviour(CallBehaviour::Manual)
        .await
        .unwrap();
    let opts = CallOptions {
        ring_for: Duration::from_millis(800),
        ..quick_call()
    };
    let out = r.modem.call(NUMBER, opts).await.unwrap();
    assert_eq!(out, CallOutcome::NoAnswer);
}

#[tokio::test]
async fn dtmf_1_acknowledges_on_each_profile_that_reports_keys() {
    for profile in [SimProfile::Sim800, SimProfile::Sim7600, SimProfile::Ec25] {
        let mut r = rig(profile).await;
        r.sim
            .set_call_behaviour(CallBehaviour::AnswerAfter(Duration::from_millis(200)))
            .await
            .unwrap();
        let sim = r.sim.clone();
        let presser = tokio::spawn(async move {
            // Press once the call is up (and speaking, where the profile can).
            tokio::time::sleep(Duration::from_millis(900)).await;
            sim.dtmf('1').await
        });
        let out = r.modem.call(NUMBER, quick_call()).await.unwrap();
        presser.await.unwrap().unwrap();
        assert_eq!(
            out,
            CallOutcome::Answered { dtmf: Some('1') },
            "{profile:?}"
        );
        event_matching(&mut r.events, Duration::from_secs(2), |e| {
            *e == ModemEvent::Dtmf { key: '1' }
        })
        .await;
    }
}

#[tokio::test]
async fn incoming_call_is_an_event_and_can_be_rejected() {
    let mut r = rig(SimProfile::Sim800).await;
    r.sim.call_in(Some(NUMBER)).await.unwrap();
    let ev = next_event(&mut r.events, Duration::from_secs(3)).await;
    assert_eq!(
        ev,
        ModemEvent::IncomingCall {
            from: Some(NUMBER.into())
        }
    );
    r.modem.reject_incoming().await.unwrap();
    event_matching(&mut r.events, Duration::from_secs(3), |e| {
        *e == ModemEvent::CallEnded
    })
    .await;
}

#[tokio::test]
async fn fault_silence_goes_down_then_recovers_after_heal() {
    let r = rig(SimProfile::Sim7600).await;
    r.sim.fault(Fault::Silence).await.unwrap();
    wait_health(&r.modem, HealthState::Down, Duration::from_secs(15)).await;
    // Pages are refused at once while down, so the notifier can fall back.
    let err = r.modem.send_sms(NUMBER, "x").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    r.sim.heal().await.unwrap();
    wait_health(&r.modem, HealthState::Up, Duration::from_secs(15)).await;
    r.modem.send_sms(NUMBER, "after silence").await.unwrap();
    logged_sms(&r.sim, "after silence").await;
}

#[tokio::test]
async fn fault_cms500_is_retried_per_part_and_reported_when_persistent() {
    let r = rig(SimProfile::Sim800).await;
    r.sim.fault(Fault::SubmitCms500 { count: 1 }).await.unwrap();
    r.modem.send_sms(NUMBER, "retried once").await.unwrap();
    logged_sms(&r.sim, "retried once").await;

    r.sim
        .fault(Fault::SubmitCms500 { count: 10 })
        .await
        .unwrap();
    let err = r.modem.send_sms(NUMBER, "never goes").await.unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "+CMS ERROR: 500 (unknown error) on AT+CMGS, part 1/1"
    );
    r.sim.heal().await.unwrap();
    r.modem.send_sms(NUMBER, "healed").await.unwrap();
}

#[tokio::test]
async fn fault_submit_error_is_not_retried_blindly() {
    let r = rig(SimProfile::Generic).await;
    r.sim.fault(Fault::SubmitError { count: 1 }).await.unwrap();
    let err = r.modem.send_sms(NUMBER, "plain error").await.unwrap_err();
    assert!(err.to_string().contains("ERROR on AT+CMGS"), "{err}");
    // Not resubmitted at once, but worth another attempt by the page's sender, later.
    assert!(err.is_retryable(), "{err}");
    r.modem.send_sms(NUMBER, "next one").await.unwrap();
}

#[tokio::test]
async fn fault_garbage_is_tolerated() {
    let r = rig(SimProfile::Ec25).await;
    for _ in 0..3 {
        r.sim.fault(Fault::Garbage).await.unwrap();
    }
    r.modem.send_sms(NUMBER, "through the noise").await.unwrap();
    logged_sms(&r.sim, "through the noise").await;
    assert_eq!(r.modem.health().borrow().state, HealthState::Up);
}

#[tokio::test]
async fn fault_vanish_reopens_when_the_device_reappears() {
    let mut r = rig(SimProfile::Sim7600).await;
    r.sim
        .fault(Fault::Vanish {
            after: Duration::from_millis(1500),
        })
        .await
        .unwrap();
    let reason = wait_health(&r.modem, HealthState::Down, Duration::from_secs(5)).await;
    assert!(
        reason.contains("port lost") || reason.contains("cannot open"),
        "{reason}"
    );
    wait_health(&r.modem, HealthState::Up, Duration::from_secs(15)).await;
    r.modem.send_sms(NUMBER, "back again").await.unwrap();
    logged_sms(&r.sim, "back again").await;
    // Receiving works on the new port too.
    r.sim
        .deliver_sms(NUMBER, "ack after replug", DeliverOptions::default())
        .await
        .unwrap();
    event_matching(
        &mut r.events,
        Duration::from_secs(5),
        |e| matches!(e, ModemEvent::SmsReceived { text, .. } if text == "ack after replug"),
    )
    .await;
}

#[tokio::test]
async fn fault_lose_registration_goes_down_and_back() {
    let r = rig(SimProfile::Sim800).await;
    r.sim
        .fault(Fault::LoseRegistration { searching: true })
        .await
        .unwrap();
    let reason = wait_health(&r.modem, HealthState::Down, Duration::from_secs(5)).await;
    assert!(reason.starts_with("not registered"), "{reason}");
    let err = r.modem.send_sms(NUMBER, "x").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    r.sim.heal().await.unwrap();
    wait_health(&r.modem, HealthState::Up, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn fault_sim_missing_goes_down_and_back() {
    let r = rig(SimProfile::Ec25).await;
    r.sim.fault(Fault::SimMissing).await.unwrap();
    let reason = wait_health(&r.modem, HealthState::Down, Duration::from_secs(5)).await;
    assert_eq!(reason, "SIM not inserted");
    r.sim.heal().await.unwrap();
    wait_health(&r.modem, HealthState::Up, Duration::from_secs(10)).await;
    r.modem.send_sms(NUMBER, "sim back").await.unwrap();
}

#[tokio::test]
async fn wrong_pin_is_tried_once_and_never_again() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::fast(SimProfile::Sim7600, dir.path().join("modem"))
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let mut s = settings(sim.pty_path());
    s.pin = Some(pagerbox::modem::Pin::new("9999"));
    let token = CancellationToken::new();
    let (modem, _events) = Modem::spawn(s, token.clone());
    let mut rx = modem.health();
    let reason = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|h| h.reason.contains("PIN")),
    )
    .await
    .unwrap()
    .unwrap()
    .reason
    .clone();
    assert_eq!(reason, "SIM PIN rejected");
    // Several health polls later the SIM still has tries left: the PIN was sent once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(modem.health().borrow().reason, "SIM PIN rejected");
    token.cancel();
}

#[tokio::test]
async fn right_pin_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        pin: Some("1234".into()),
        ..SimConfig::fast(SimProfile::Sim800, dir.path().join("modem"))
    };
    let sim = Simulator::start(cfg).await.unwrap();
    let _r = attach(dir, sim, |s| {
        s.pin = Some(pagerbox::modem::Pin::new("1234"))
    })
    .await;
}

#[tokio::test]
async fn status_reports_identity_and_network() {
    let r = rig(SimProfile::Sim7600).await;
    let st = r.modem.status().await.unwrap();
    assert_eq!(st.profile, pagerbox::modem::Profile::Sim7600);
    assert!(st.registration.is_registered());
    assert!(st.signal_dbm.is_some());
    assert!(!st.model.is_empty());
}

#[tokio::test]
async fn a_one_shot_tool_leaves_stored_replies_for_the_daemon() {
    let (dir, sim) = start_sim(SimProfile::Sim800).await;
    sim.deliver_sms(NUMBER, "ack 9", DeliverOptions::default())
        .await
        .unwrap();
    // A bench-test session (receive_messages off) comes and goes...
    {
        let mut s = settings(sim.pty_path());
        s.receive_messages = false;
        let token = CancellationToken::new();
        let (modem, mut events) = Modem::spawn(s, token.clone());
        wait_health(&modem, HealthState::Up, Duration::from_secs(20)).await;
        modem.status().await.unwrap();
        assert!(events.try_recv().is_err(), "the tool consumed a reply");
        token.cancel();
        modem.stopped().await;
    }
    // ...and the daemon still finds the reply.
    let mut r = attach(dir, sim, |_| {}).await;
    let ev = next_event(&mut r.events, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, ModemEvent::SmsReceived { ref text, .. } if text == "ack 9"),
        "{ev:?}"
    );
}

/// A critical SMS page that arrives while a voice page rings goes out within seconds, during
/// the call, instead of after the whole ring time; the call rings on.
#[tokio::test]
async fn an_sms_page_does_not_wait_behind_a_ringing_voice_page() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig {
        ring_timeout: Duration::from_secs(120),
        ..SimConfig::fast(SimProfile::Sim7600, dir.path().join("modem"))
    };
    let sim = Simulator::start(cfg).await.expect("simulator starts");
    let r = attach(dir, sim, |_| {}).await;
    r.sim
        .set_call_behaviour(CallBehaviour::Manual)
        .await
        .unwrap();
    // A voice page with the daemon's default ring time.
    let ring_for = CallOptions::default().ring_for;
    let modem = r.modem.clone();
    let call = tokio::spawn(async move {
        let opts = CallOptions {
            ring_for,
            ..quick_call()
        };
        modem.call("+4915199999999", opts).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let receipt = tokio::time::timeout(
        ring_for + Duration::from_secs(10),
        r.modem.send_sms(NUMBER, "CRITICAL: db1 down"),
    )
    .await
    .expect("the SMS page never went out")
    .expect("the SMS page failed");
    let waited = started.elapsed();
    eprintln!("SMS page waited {waited:?} behind a ringing voice page (ring_for {ring_for:?})");
    assert_eq!(receipt.references.len(), 1);
    assert!(
        waited < Duration::from_secs(5),
        "the SMS page waited {waited:?} behind the ringing call"
    );
    assert!(!call.is_finished(), "the voice page still rings");
    let log = r.sim.network_log().await.unwrap();
    assert!(
        !log.iter().any(|e| matches!(e, NetworkEntry::Call { .. })),
        "the call was not ended to send the SMS: {log:?}"
    );
    r.modem.hang_up().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call ends after the hang-up")
        .unwrap()
        .unwrap();
    assert!(matches!(outcome, CallOutcome::Failed(_)), "{outcome:?}");
}
