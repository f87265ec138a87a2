//! Whole AT dialogues against the pure engine: a harness collects what it writes and fires
//! the timers it arms, so no PTY and no clock are needed.

use super::*;
use std::path::PathBuf;

/// Drives an engine without a PTY: collects what it writes, arms timers on request.
pub(super) struct Harness {
    pub e: Engine,
    pub now: DateTime<Utc>,
    pub out: Vec<u8>,
    pub timers: Vec<(Duration, Timer)>,
    pub log: Vec<NetworkEntry>,
    pub held: Vec<Vec<u8>>,
}

impl Harness {
    pub fn new(profile: SimProfile) -> Self {
        Self::with(SimConfig::fast(profile, PathBuf::from("/nonexistent")))
    }

    pub fn with(cfg: SimConfig) -> Self {
        let now = DateTime::<Utc>::from_timestamp(1_795_000_000, 0).unwrap();
        let mut e = Engine::new(cfg, now);
        let fx = e.power_on(now);
        let mut h = Self {
            e,
            now,
            out: Vec::new(),
            timers: Vec::new(),
            log: Vec::new(),
            held: Vec::new(),
        };
        h.apply(fx);
        h.fire();
        h.out.clear();
        h
    }

    pub fn apply(&mut self, fx: Vec<Effect>) {
        for e in fx {
            match e {
                Effect::Write { chunks, .. } => {
                    for (i, c) in chunks.iter().enumerate() {
                        self.out.extend_from_slice(c);
                        if i == 0 && chunks.len() >= 2 {
                            for h in self.held.drain(..) {
                                self.out.extend_from_slice(&h);
                            }
                        }
                    }
                }
                Effect::HoldUrc(b) => self.held.push(b),
                Effect::Log(l) => self.log.push(l),
                Effect::Schedule { after, timer } => self.timers.push((after, timer)),
                Effect::Vanish(_) => {}
            }
        }
    }

    pub fn take(&mut self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut self.out)).into_owned()
    }

    /// Sends raw bytes; returns everything written in reply.
    pub fn send(&mut self, s: &str) -> String {
        let fx = self.e.input(s.as_bytes(), self.now);
        self.apply(fx);
        self.take()
    }

    /// Sends a command line terminated by CR.
    pub fn at(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r"))
    }

    /// Fires the armed timers (shortest first), including those they arm, up to a bound
    /// (rings re-arm themselves forever).
    pub fn fire(&mut self) -> String {
        for _ in 0..20 {
            if self.timers.is_empty() {
                break;
            }
            self.timers.sort_by_key(|(d, _)| *d);
            let (d, t) = self.timers.remove(0);
            self.now += chrono::Duration::from_std(d).unwrap();
            let fx = self.e.timer(t, self.now);
            self.apply(fx);
        }
        self.take()
    }

    /// Fires only the next timer.
    pub fn fire_one(&mut self) -> String {
        self.timers.sort_by_key(|(d, _)| *d);
        if !self.timers.is_empty() {
            let (d, t) = self.timers.remove(0);
            self.now += chrono::Duration::from_std(d).unwrap();
            let fx = self.e.timer(t, self.now);
            self.apply(fx);
        }
        self.take()
    }
}

fn quiet(profile: SimProfile) -> Harness {
    let mut h = Harness::new(profile);
    assert_eq!(h.at("ATE0"), "ATE0\r\r\nOK\r\n");
    h
}

#[test]
fn echo_is_on_until_ate0() {
    let mut h = Harness::new(SimProfile::Generic);
    assert_eq!(h.at("AT"), "AT\r\r\nOK\r\n");
    assert_eq!(h.at("ATE0"), "ATE0\r\r\nOK\r\n");
    assert_eq!(h.at("AT"), "\r\nOK\r\n");
    // A line feed after the CR (as most clients send) is ignored.
    assert_eq!(h.send("AT\r\n"), "\r\nOK\r\n");
}

#[test]
fn chained_commands_run_in_order_and_stop_at_the_first_error() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(h.at("AT+CMEE=1;+CREG=2"), "\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CMEE?;+CREG?"),
        "\r\n+CMEE: 1\r\n\r\n+CREG: 2,1,\"1A2B\",\"B3C4\",7\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("ATE0V1"), "\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CGMI;+BOGUS;+CGMM"),
        "\r\npagerbox\r\n\r\nERROR\r\n"
    );
    assert_eq!(h.at("AT+NOSUCH"), "\r\nERROR\r\n");
    assert_eq!(h.at("ATÜ"), "\r\nERROR\r\n");
    assert_eq!(h.at("hello"), "", "lines without AT are ignored");
}

#[test]
fn identification_per_profile() {
    let mut h = quiet(SimProfile::Sim800);
    assert_eq!(h.at("ATI"), "\r\nSIM800 R14.18\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CGMM"), "\r\nSIMCOM_SIM800\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCID"), format!("\r\n{ICCID}\r\n\r\nOK\r\n"));
    let mut h = quiet(SimProfile::Ec25);
    assert_eq!(
        h.at("ATI"),
        "\r\nQuectel\r\nEC25\r\nRevision: EC25EFAR06A06M4G\r\n\r\nOK\r\n"
    );
    assert_eq!(
        h.at("AT+QCCID"),
        format!("\r\n+QCCID: {ICCID}\r\n\r\nOK\r\n")
    );
    assert_eq!(h.at("AT+CGSN"), format!("\r\n{IMEI}\r\n\r\nOK\r\n"));
    assert_eq!(h.at("AT+CIMI"), format!("\r\n{IMSI}\r\n\r\nOK\r\n"));
}

#[test]
fn boot_banners_follow_the_profile() {
    let cfg = SimConfig::fast(SimProfile::Sim800, PathBuf::from("/x"));
    let now = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
    let mut e = Engine::new(cfg, now);
    let mut h = Harness {
        e: Engine::new(
            SimConfig::fast(SimProfile::Generic, PathBuf::from("/x")),
            now,
        ),
        now,
        out: Vec::new(),
        timers: Vec::new(),
        log: Vec::new(),
        held: Vec::new(),
    };
    let fx = e.power_on(now);
    h.e = e;
    h.apply(fx);
    assert_eq!(
        h.fire(),
        "\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n"
    );
    // AT+CFUN=1,1 reboots: OK, then the banners again, echo back on.
    h.at("ATE0");
    assert_eq!(h.at("AT+CFUN=1,1"), "\r\nOK\r\n");
    assert!(h.fire().contains("\r\nRDY\r\n"));
    assert_eq!(h.at("AT"), "AT\r\r\nOK\r\n");
}

/// A brown-out restarts the module without a word: no banners, but every setting is back at
/// its factory value, as a DTE can only find out by reading them.
#[test]
fn a_brownout_restarts_silently_with_factory_settings() {
    let mut h = quiet(SimProfile::Sim800);
    h.at("ATE0;+CREG=1;+CLIP=1");
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 1,1\r\n\r\nOK\r\n");
    let fx = h.e.fault(Fault::Brownout, h.now);
    h.apply(fx);
    assert_eq!(h.fire(), "", "a brown-out boot announces nothing");
    assert_eq!(h.at("AT"), "AT\r\r\nOK\r\n", "echo is back on");
    assert_eq!(h.at("ATE0"), "ATE0\r\r\nOK\r\n");
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 0,1\r\n\r\nOK\r\n");
    assert!(h.at("AT+CLIP?").contains("+CLIP: 0,"));
}

#[test]
fn cscs_test_form_is_the_standard_one() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(
        h.at("AT+CSCS=?"),
        "\r\n+CSCS: (\"IRA\",\"GSM\",\"UCS2\")\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CSCS=\"UCS2\""), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CSCS?"), "\r\n+CSCS: \"UCS2\"\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CMEE=1;+CSCS=\"KOI8\""), "\r\n+CME ERROR: 4\r\n");
}

#[test]
fn cpms_reports_and_selects_storages() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(
        h.at("AT+CPMS?"),
        "\r\n+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30\r\n\r\nOK\r\n"
    );
    assert_eq!(
        h.at("AT+CPMS=\"ME\",\"ME\",\"MT\""),
        "\r\n+CPMS: 0,100,0,100,0,130\r\n\r\nOK\r\n"
    );
    assert_eq!(
        h.at("AT+CPMS=?"),
        "\r\n+CPMS: (\"SM\",\"ME\",\"MT\"),(\"SM\",\"ME\",\"MT\"),(\"SM\",\"ME\",\"MT\")\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CPMS=\"XX\""), "\r\n+CMS ERROR: 302\r\n");
    assert_eq!(
        h.at("AT+CPMS?"),
        "\r\n+CPMS: \"ME\",0,100,\"ME\",0,100,\"MT\",0,130\r\n\r\nOK\r\n"
    );
}

#[test]
fn csca_reads_and_sets_the_service_centre() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(
        h.at("AT+CSCA?"),
        "\r\n+CSCA: \"+491710760000\",145\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CSCA=\"+4917000\",145"), "\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CSCA?"),
        "\r\n+CSCA: \"+4917000\",145\r\n\r\nOK\r\n"
    );
}

#[test]
fn cmgs_prompts_and_esc_aborts() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(h.at("AT+CMGS=17"), "\r\n> ");
    assert_eq!(h.send("0011\x1b"), "\r\nOK\r\n");
    assert_eq!(h.at("AT"), "\r\nOK\r\n", "back in command mode");
    assert_eq!(h.at("AT+CMGS=0"), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(h.at("AT+CMGS"), "\r\n+CMS ERROR: 302\r\n");
    assert_eq!(h.at("AT+CMGF=1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CMGS=\"+4917\""), "\r\n> ");
    assert_eq!(
        h.send("line one\r"),
        "\r\n> ",
        "text mode prompts again per line"
    );
    assert_eq!(h.send("\x1b"), "\r\nOK\r\n");
}

#[test]
fn prompt_input_is_echoed_while_echo_is_on() {
    let mut h = Harness::new(SimProfile::Generic);
    assert_eq!(h.at("AT+CMGS=9"), "AT+CMGS=9\r\r\n> ");
    assert_eq!(h.send("00AB"), "00AB");
    assert_eq!(h.send("\x1b"), "\r\nOK\r\n");
}

#[test]
fn cmee_selects_error_forms() {
    let mut h = quiet(SimProfile::Generic);
    h.e.fault(Fault::SimMissing, h.now);
    h.take();
    assert_eq!(h.at("AT+CIMI"), "\r\nERROR\r\n");
    h.at("AT+CMEE=1");
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CME ERROR: 10\r\n");
    h.at("AT+CMEE=2");
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CME ERROR: SIM not inserted\r\n");
    assert_eq!(h.at("AT+CMGR=1"), "\r\n+CMS ERROR: SIM not inserted\r\n");
    assert_eq!(
        h.at("AT+CMEE=7"),
        "\r\n+CME ERROR: incorrect parameters\r\n"
    );
}

#[test]
fn pin_is_required_and_three_wrong_pins_lock_to_puk() {
    let mut cfg = SimConfig::fast(SimProfile::Sim800, PathBuf::from("/x"));
    cfg.pin = Some("1234".into());
    let mut h = Harness::with(cfg.clone());
    h.at("ATE0;+CMEE=1");
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CPIN: SIM PIN\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CPMS?"), "\r\n+CMS ERROR: 311\r\n");
    let unlocked = h.at("AT+CPIN=\"1234\"");
    assert!(unlocked.starts_with("\r\nOK\r\n"), "{unlocked:?}");
    assert!(unlocked.contains("+CPIN: READY") && unlocked.contains("SMS Ready"));
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 0,1\r\n\r\nOK\r\n");

    let mut h = Harness::with(cfg);
    h.at("ATE0;+CMEE=1");
    assert_eq!(h.at("AT+CPIN=\"0000\""), "\r\n+CME ERROR: 16\r\n");
    assert_eq!(h.at("AT+CPIN=\"0000\""), "\r\n+CME ERROR: 16\r\n");
    assert!(h
        .at("AT+CPIN=\"0000\"")
        .starts_with("\r\n+CME ERROR: 16\r\n"));
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CPIN: SIM PUK\r\n\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CPIN=\"1234\""),
        "\r\n+CME ERROR: 16\r\n",
        "PIN no longer works"
    );
    assert!(h
        .at(&format!("AT+CPIN=\"{SIM_PUK}\",\"4321\""))
        .starts_with("\r\nOK\r\n"));
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CPIN: READY\r\n\r\nOK\r\n");
}

#[test]
fn registration_urcs_follow_creg_n() {
    let mut h = quiet(SimProfile::Ec25);
    h.at("AT+CREG=1;+CEREG=2");
    h.e.fault(Fault::LoseRegistration { searching: true }, h.now)
        .into_iter()
        .for_each(|e| h.apply(vec![e]));
    assert_eq!(h.take(), "\r\n+CREG: 2\r\n\r\n+CEREG: 2\r\n");
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 1,2\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+COPS?"), "\r\n+COPS: 0\r\n\r\nOK\r\n");
    let fx = h.e.heal(h.now);
    h.apply(fx);
    assert_eq!(
        h.take(),
        "\r\n+CREG: 1\r\n\r\n+CEREG: 1,\"1A2B\",\"01A2B3C4\",7\r\n"
    );
    assert_eq!(
        h.at("AT+COPS?"),
        "\r\n+COPS: 0,0,\"pagerbox net\",7\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CSQ"), "\r\n+CSQ: 21,0\r\n\r\nOK\r\n");
}

#[test]
fn sim800_has_no_cereg() {
    let mut h = quiet(SimProfile::Sim800);
    assert_eq!(h.at("AT+CEREG?"), "\r\nERROR\r\n");
    assert_eq!(h.at("AT+CGREG?"), "\r\n+CGREG: 0,1\r\n\r\nOK\r\n");
}

#[test]
fn outgoing_call_walks_dialing_alerting_active() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(h.e.ringing_out(), None);
    assert_eq!(h.at("ATD+4915112345678;"), "\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CLCC"),
        "\r\n+CLCC: 1,0,2,0,0,\"+4915112345678\",145\r\n\r\nOK\r\n"
    );
    assert_eq!(h.e.ringing_out(), Some("+4915112345678"));
    h.fire_one();
    assert_eq!(
        h.at("AT+CLCC"),
        "\r\n+CLCC: 1,0,3,0,0,\"+4915112345678\",145\r\n\r\nOK\r\n"
    );
    assert_eq!(h.e.ringing_out(), Some("+4915112345678"));
    let fx = h.e.answer(h.now).unwrap();
    h.apply(fx);
    assert_eq!(h.e.ringing_out(), None, "answered: no longer ringing");
    assert_eq!(
        h.at("AT+CLCC"),
        "\r\n+CLCC: 1,0,0,0,0,\"+4915112345678\",145\r\n\r\nOK\r\n"
    );
    let fx = h.e.dtmf('1', h.now).unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "", "generic modems do not report DTMF");
    assert_eq!(h.at("ATH"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CLCC"), "\r\nOK\r\n");
    let Some(NetworkEntry::Call {
        outcome,
        dtmf,
        number,
        ..
    }) = h.log.last()
    else {
        panic!("call logged");
    };
    assert_eq!(
        (*outcome, dtmf.as_str(), number.as_str()),
        (CallOutcome::Answered, "1", "+4915112345678")
    );
}

#[test]
fn busy_and_no_answer_outcomes() {
    let mut h = quiet(SimProfile::Generic);
    h.e.set_call_behaviour(CallBehaviour::Busy);
    h.at("ATD0301234;");
    assert_eq!(h.fire(), "\r\nBUSY\r\n");
    h.e.set_call_behaviour(CallBehaviour::NoAnswer);
    h.at("ATD0301234;");
    assert_eq!(h.fire(), "\r\nNO ANSWER\r\n");
    h.e.set_call_behaviour(CallBehaviour::Reject);
    h.at("ATD0301234;");
    assert_eq!(h.fire(), "\r\nNO CARRIER\r\n");
    let outcomes: Vec<CallOutcome> = h
        .log
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::Call { outcome, .. } => Some(*outcome),
            _ => None,
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            CallOutcome::Busy,
            CallOutcome::NoAnswer,
            CallOutcome::Rejected
        ]
    );
    assert_eq!(h.at("ATD123"), "\r\nNO CARRIER\r\n", "no data calls");
}

#[test]
fn answer_after_and_voice_call_urcs_on_sim7600() {
    let mut h = quiet(SimProfile::Sim7600);
    h.e.set_call_behaviour(CallBehaviour::AnswerAfter(Duration::from_millis(100)));
    h.at("AT+DDET=1");
    h.at("ATD+4930123;");
    assert_eq!(h.fire(), "\r\nVOICE CALL: BEGIN\r\n");
    let fx = h.e.dtmf('1', h.now).unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+RXDTMF: 1\r\n");
    assert_eq!(h.at("AT+CTTS=2,\"Page: disk full\""), "\r\nOK\r\n");
    assert_eq!(h.fire(), "\r\n+CTTS: 0\r\n");
    let fx = h.e.reject(h.now).unwrap();
    h.apply(fx);
    assert_eq!(
        h.take(),
        "\r\nVOICE CALL: END: 000000\r\n\r\nNO CARRIER\r\n"
    );
    let spoken: Vec<&NetworkEntry> = h.log.iter().filter(|e| e.kind() == "tts").collect();
    assert_eq!(spoken.len(), 1);
    let Some(NetworkEntry::Call { spoken, .. }) = h.log.last() else {
        panic!("call logged");
    };
    assert_eq!(spoken, &vec!["Page: disk full".to_string()]);
}

#[test]
fn dtmf_reports_per_profile() {
    for (profile, enable, report) in [
        (SimProfile::Sim800, "AT+DDET=1", "\r\n+DTMF:5\r\n"),
        (SimProfile::Sim7600, "AT+DDET=1", "\r\n+RXDTMF: 5\r\n"),
        (SimProfile::Ec25, "AT+QTONEDET=1", "\r\n+QTONEDET: 53\r\n"),
    ] {
        let mut h = quiet(profile);
        h.e.set_call_behaviour(CallBehaviour::AnswerAfter(Duration::ZERO));
        h.at("ATD+4930123;");
        h.fire();
        let fx = h.e.dtmf('5', h.now).unwrap();
        h.apply(fx);
        assert_eq!(h.take(), "", "{profile}: not reported before it is enabled");
        assert_eq!(h.at(enable), "\r\nOK\r\n");
        let fx = h.e.dtmf('5', h.now).unwrap();
        h.apply(fx);
        assert_eq!(h.take(), report, "{profile}");
    }
}

#[test]
fn incoming_call_rings_with_clip_until_answered() {
    let mut h = quiet(SimProfile::Sim800);
    h.at("AT+CLIP=1");
    let fx = h.e.call_in(Some("+4917012345"), h.now).unwrap();
    h.apply(fx);
    assert_eq!(
        h.take(),
        "\r\nRING\r\n\r\n+CLIP: \"+4917012345\",145,\"\",0,\"\",0\r\n"
    );
    assert!(h.fire_one().contains("RING"), "rings again");
    assert_eq!(
        h.at("AT+CLCC"),
        "\r\n+CLCC: 1,1,4,0,0,\"+4917012345\",145\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("ATA"), "\r\nOK\r\n");
    assert_eq!(h.fire_one(), "", "no more rings once answered");
    assert_eq!(h.at("AT+CHUP"), "\r\nOK\r\n");
    assert!(matches!(
        h.log.last(),
        Some(NetworkEntry::Call {
            outcome: CallOutcome::Answered,
            direction: CallDirection::Incoming,
            ..
        })
    ));
}

#[test]
fn unanswered_incoming_call_is_missed_after_the_ring_timeout() {
    let mut h = quiet(SimProfile::Generic);
    let fx = h.e.call_in(None, h.now).unwrap();
    h.apply(fx);
    let out = h.fire();
    assert!(out.ends_with("\r\nNO CARRIER\r\n"), "{out:?}");
    assert!(matches!(
        h.log.last(),
        Some(NetworkEntry::Call {
            outcome: CallOutcome::Missed,
            ..
        })
    ));
}

#[test]
fn silence_reads_but_never_answers_until_healed() {
    let mut h = quiet(SimProfile::Generic);
    h.e.fault(Fault::Silence, h.now);
    assert_eq!(h.at("AT"), "");
    assert!(h
        .e
        .call_in(Some("+491"), h.now)
        .unwrap()
        .iter()
        .all(|e| !matches!(e, Effect::Write { .. })));
    let fx = h.e.heal(h.now);
    h.apply(fx);
    h.take();
    assert_eq!(h.at("AT"), "\r\nOK\r\n");
}

#[test]
fn sim_missing_reports_not_inserted() {
    let mut h = quiet(SimProfile::Sim7600);
    h.at("AT+CMEE=1");
    let fx = h.e.fault(Fault::SimMissing, h.now);
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CPIN: NOT INSERTED\r\n");
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CME ERROR: 10\r\n");
    assert_eq!(h.at("AT+CMGL=4"), "\r\n+CMS ERROR: 310\r\n");
    assert_eq!(h.at("ATD+491;"), "\r\n+CME ERROR: 10\r\n");
    let fx = h.e.heal(h.now);
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CPIN: READY\r\n");
    assert_eq!(h.at("AT+CPIN?"), "\r\n+CPIN: READY\r\n\r\nOK\r\n");
}

#[test]
fn verbose_off_gives_numeric_results() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(h.at("ATV0"), "0\r");
    assert_eq!(h.at("AT+CGMI"), "pagerbox\r\n0\r");
    assert_eq!(h.at("AT+XYZ"), "4\r");
    assert_eq!(h.at("ATV1"), "\r\nOK\r\n");
}

/// The published SUBMIT vector: "hellohello" to +46708251358, with the empty `00` SMSC field.
const HELLO: &str = "0011000B916407281553F80000AA0AE8329BFD4697D9EC37";

fn submit(h: &mut Harness, tpdu_len: usize, hex: &str) -> String {
    assert_eq!(h.at(&format!("AT+CMGS={tpdu_len}")), "\r\n> ");
    h.send(&format!("{hex}\x1a"))
}

fn sms_texts(h: &Harness) -> Vec<(String, String, Vec<u8>)> {
    h.log
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::Sms {
                to,
                text,
                message_references,
                ..
            } => Some((to.clone(), text.clone(), message_references.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn cmgs_accepts_a_pdu_with_or_without_smsc_field() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(
        submit(&mut h, 23, &HELLO[2..]),
        "\r\n+CMGS: 1\r\n\r\nOK\r\n"
    );
    let with_smsc = format!("0791947101670000{}", &HELLO[2..]);
    assert_eq!(submit(&mut h, 23, &with_smsc), "\r\n+CMGS: 2\r\n\r\nOK\r\n");
    let texts = sms_texts(&h);
    assert_eq!(texts.len(), 3);
    for (i, (to, text, mrs)) in texts.into_iter().enumerate() {
        assert_eq!((to.as_str(), text.as_str()), ("+46708251358", "hellohello"));
        assert_eq!(mrs, vec![i as u8]);
    }
}

#[test]
fn cmgs_length_must_count_exactly_the_tpdu() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(submit(&mut h, 22, HELLO), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(submit(&mut h, 24, HELLO), "\r\n+CMS ERROR: 304\r\n");
    assert_eq!(submit(&mut h, 23, "00ZZ"), "\r\n+CMS ERROR: 304\r\n");
    assert!(matches!(
        h.log.last(),
        Some(NetworkEntry::SmsRefused { .. })
    ));
    assert_eq!(
        submit(&mut h, 23, HELLO),
        "\r\n+CMGS: 0\r\n\r\nOK\r\n",
        "no MR used by refusals"
    );
}

#[test]
fn message_reference_wraps_after_255() {
    let mut h = quiet(SimProfile::Generic);
    for expected in (0..=255u16).chain(0..2) {
        assert_eq!(
            submit(&mut h, 23, HELLO),
            format!("\r\n+CMGS: {expected}\r\n\r\nOK\r\n")
        );
    }
}

#[test]
fn multipart_submits_are_reassembled_in_the_log() {
    use crate::modem::pdu::{encode_submit, SubmitOptions};
    let mut h = quiet(SimProfile::Generic);
    let text = "Disk full on db-1. ".repeat(12) + "€ and done";
    let parts = encode_submit(
        "+4915112345678",
        &text,
        &SubmitOptions {
            concat_reference: 42,
            ..SubmitOptions::default()
        },
    )
    .unwrap();
    assert!(parts.len() > 1);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            submit(&mut h, p.tpdu_len, &p.hex),
            format!("\r\n+CMGS: {i}\r\n\r\nOK\r\n")
        );
    }
    let texts = sms_texts(&h);
    assert_eq!(texts.len(), 1, "one whole message");
    assert_eq!(texts[0].1, text);
    assert_eq!(texts[0].2.len(), parts.len());
    assert_eq!(
        h.log.iter().filter(|e| e.kind() == "sms_part").count(),
        parts.len()
    );
}

#[test]
fn a_status_report_burst_is_one_write_of_decodable_reports() {
    use crate::modem::pdu::{self, Direction, Pdu};
    let mut h = quiet(SimProfile::Sim7600);
    h.at("AT+CNMI=2,1,0,1,0");
    let now = h.now;
    let fx = h.e.status_report_burst(300, 250, "+4915112345678", now);
    let writes = fx
        .iter()
        .filter(|e| matches!(e, Effect::Write { .. }))
        .count();
    assert_eq!(writes, 1, "one burst, one write");
    h.apply(fx);
    let out = h.take();
    let lines: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 600);
    let refs: Vec<u8> = lines
        .chunks(2)
        .map(|pair| {
            let len: usize = pair[0].strip_prefix("+CDS: ").unwrap().parse().unwrap();
            match pdu::decode_with_tpdu_len(pair[1], Direction::MobileTerminated, len).unwrap() {
                Pdu::StatusReport(r) => r.message_reference,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(&refs[..7], &[250, 251, 252, 253, 254, 255, 0]);
    assert_eq!(
        h.log.iter().filter(|e| e.kind() == "status_report").count(),
        300
    );
}

#[test]
fn status_report_as_cds_or_cdsi() {
    use crate::modem::pdu::{self, encode_submit, Direction, Pdu, SubmitOptions};
    let mut h = quiet(SimProfile::Sim800);
    let p = encode_submit(
        "+4915112345678",
        "ping",
        &SubmitOptions {
            request_status_report: true,
            ..SubmitOptions::default()
        },
    )
    .unwrap()
    .remove(0);
    h.at("AT+CNMI=2,1,0,1,0");
    assert_eq!(
        submit(&mut h, p.tpdu_len, &p.hex),
        "\r\n+CMGS: 0\r\n\r\nOK\r\n"
    );
    let cds = h.fire();
    let lines: Vec<&str> = cds.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("+CDS: "), "{cds:?}");
    let len: usize = lines[0][6..].parse().unwrap();
    match pdu::decode_with_tpdu_len(lines[1], Direction::MobileTerminated, len).unwrap() {
        Pdu::StatusReport(r) => assert_eq!(r.message_reference, 0),
        other => panic!("{other:?}"),
    }
    h.at("AT+CNMI=2,1,0,2,0");
    submit(&mut h, p.tpdu_len, &p.hex);
    assert_eq!(h.fire(), "\r\n+CDSI: \"SM\",1\r\n");
    let r = h.at("AT+CMGR=1");
    assert!(r.starts_with("\r\n+CMGR: 0,,"), "{r:?}");
    h.at("AT+CNMI=2,1,0,0,0");
    submit(&mut h, p.tpdu_len, &p.hex);
    assert_eq!(h.fire(), "", "ds=0: no report to the DTE");
    let routed: Vec<String> = h
        .log
        .iter()
        .filter_map(|e| match e {
            NetworkEntry::StatusReport {
                routed,
                message_reference,
                ..
            } => Some(format!("{routed}:{message_reference}")),
            _ => None,
        })
        .collect();
    assert_eq!(routed, vec!["cds:0", "cdsi:1", "discarded:2"]);
}

#[test]
fn an_undeliverable_message_is_accepted_and_its_report_says_so() {
    use crate::modem::pdu::{self, encode_submit, DeliveryOutcome, Direction, Pdu, SubmitOptions};
    let mut h = quiet(SimProfile::Sim800);
    let p = encode_submit(
        "+4915112345678",
        "ping",
        &SubmitOptions {
            request_status_report: true,
            ..SubmitOptions::default()
        },
    )
    .unwrap()
    .remove(0);
    h.at("AT+CNMI=2,1,0,1,0");
    h.e.fault(Fault::Undeliverable { count: 1 }, h.now);
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        // Accepted like any other: the network takes it, only the handset never does.
        assert!(submit(&mut h, p.tpdu_len, &p.hex).starts_with("\r\n+CMGS: "));
        let cds = h.fire();
        let lines: Vec<&str> = cds.split("\r\n").filter(|l| !l.is_empty()).collect();
        let len: usize = lines[0][6..].parse().unwrap();
        match pdu::decode_with_tpdu_len(lines[1], Direction::MobileTerminated, len).unwrap() {
            Pdu::StatusReport(r) => outcomes.push((r.status, r.outcome())),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        outcomes,
        vec![
            (0x46, DeliveryOutcome::Failed),
            (0x00, DeliveryOutcome::Delivered)
        ]
    );
    // Text mode shows the same status as its last field.
    h.e.fault(Fault::Undeliverable { count: 1 }, h.now);
    h.at("AT+CMGF=1;+CSMP=49,167,0,0");
    h.at("AT+CMGS=\"+4915112345678\"");
    h.send("ping\x1a");
    assert!(h.fire().trim_end().ends_with(",70"), "0x46 is 70");
}

#[test]
fn incoming_sms_is_stored_announced_read_listed_and_deleted() {
    use crate::modem::pdu::{self, Direction, Pdu};
    let mut h = quiet(SimProfile::Sim800);
    let fx =
        h.e.deliver_sms("+4917012345", "ACK 42", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CMTI: \"SM\",1\r\n");
    let r = h.at("AT+CMGR=1");
    let lines: Vec<&str> = r.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(lines[0].starts_with("+CMGR: 0,,"), "{r:?}");
    match pdu::decode(lines[1], Direction::MobileTerminated, true).unwrap() {
        Pdu::Deliver(d) => {
            assert_eq!(d.text, "ACK 42");
            assert_eq!(d.sender.number, "+4917012345");
        }
        other => panic!("{other:?}"),
    }
    assert!(h.at("AT+CMGR=1").starts_with("\r\n+CMGR: 1,,"), "now read");
    assert!(h.at("AT+CMGL=4").starts_with("\r\n+CMGL: 1,1,,"));
    assert_eq!(h.at("AT+CMGL=0"), "\r\nOK\r\n", "nothing unread");
    assert_eq!(h.at("AT+CMGD=1"), "\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CMGR=1"),
        "\r\nOK\r\n",
        "SIM800 answers OK for an empty slot"
    );
    assert_eq!(h.at("AT+CMGR=99"), "\r\n+CMS ERROR: 321\r\n");
}

#[test]
fn multipart_incoming_sms_is_stored_as_parts_and_text_mode_reads_them() {
    let mut h = quiet(SimProfile::Generic);
    let long = "Grüße aus dem Rechenzentrum! ".repeat(8);
    let fx =
        h.e.deliver_sms("+4917012345", &long, DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    let urcs = h.take();
    assert_eq!(urcs.matches("+CMTI: \"SM\"").count(), 2, "{urcs:?}");
    h.at("AT+CMGF=1");
    let listing = h.at("AT+CMGL=\"ALL\"");
    assert_eq!(listing.matches("+CMGL: ").count(), 2, "{listing:?}");
    assert!(listing.contains("\"REC UNREAD\",\"+4917012345\""));
    let texts: String = listing
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.starts_with("+CMGL") && *l != "OK")
        .collect();
    assert_eq!(texts, long);
}

#[test]
fn quectel_storage_indexes_start_at_zero() {
    let mut h = quiet(SimProfile::Ec25);
    let fx =
        h.e.deliver_sms("+4917012345", "hi", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CMTI: \"SM\",0\r\n");
    assert!(h.at("AT+CMGR=0").starts_with("\r\n+CMGR: 0,,"));
}

#[test]
fn cnmi_mt2_routes_cmt_directly() {
    let mut h = quiet(SimProfile::Generic);
    h.at("AT+CNMI=2,2,0,0,0");
    let fx =
        h.e.deliver_sms("+4917012345", "direct", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    let out = h.take();
    assert!(out.starts_with("\r\n+CMT: ,"), "{out:?}");
    assert_eq!(
        h.at("AT+CPMS?"),
        "\r\n+CPMS: \"SM\",0,30,\"SM\",0,30,\"SM\",0,30\r\n\r\nOK\r\n"
    );
    h.at("AT+CMGF=1");
    let fx =
        h.e.deliver_sms("+4917012345", "texty", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    let out = h.take();
    assert!(out.starts_with("\r\n+CMT: \"+4917012345\",,\""), "{out:?}");
    assert!(out.ends_with("\r\ntexty\r\n"), "{out:?}");
}

#[test]
fn cmti_held_for_the_inside_of_a_cmgl_listing() {
    let mut h = quiet(SimProfile::Generic);
    for t in ["one", "two"] {
        let fx =
            h.e.deliver_sms("+4917012345", t, DeliverOptions::default(), h.now)
                .unwrap();
        h.apply(fx);
    }
    h.take();
    let opts = DeliverOptions {
        placement: UrcPlacement::InsideNextResponse,
        ..DeliverOptions::default()
    };
    let fx =
        h.e.deliver_sms("+4917012345", "three", opts, h.now)
            .unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "", "held");
    let listing = h.at("AT+CMGL=4");
    let lines: Vec<&str> = listing.split("\r\n").collect();
    let cmti = lines
        .iter()
        .position(|l| *l == "+CMTI: \"SM\",3")
        .expect("URC inside");
    assert!(lines[..cmti].iter().any(|l| l.starts_with("+CMGL: 1,")));
    assert!(lines[cmti..].iter().any(|l| l.starts_with("+CMGL: 2,")));
    assert!(listing.ends_with("\r\nOK\r\n"));
}

#[test]
fn submit_faults_and_lost_registration() {
    let mut h = quiet(SimProfile::Generic);
    h.at("AT+CMEE=1");
    h.e.fault(Fault::SubmitError { count: 2 }, h.now);
    assert_eq!(submit(&mut h, 23, HELLO), "\r\nERROR\r\n");
    assert_eq!(submit(&mut h, 23, HELLO), "\r\nERROR\r\n");
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    h.e.fault(Fault::SubmitCms500 { count: 1 }, h.now);
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMS ERROR: 500\r\n");
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMGS: 1\r\n\r\nOK\r\n");
    h.e.fault(Fault::LoseRegistration { searching: false }, h.now);
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMS ERROR: 331\r\n");
    assert_eq!(h.at("AT+CREG?"), "\r\n+CREG: 0,0\r\n\r\nOK\r\n");
    assert_eq!(h.at("ATD+491;"), "\r\nNO CARRIER\r\n");
    h.e.heal(h.now);
    assert_eq!(submit(&mut h, 23, HELLO), "\r\n+CMGS: 2\r\n\r\nOK\r\n");
}

#[test]
fn messages_wait_in_the_network_while_unregistered() {
    let mut h = quiet(SimProfile::Generic);
    h.e.fault(Fault::LoseRegistration { searching: true }, h.now);
    let fx =
        h.e.deliver_sms("+4917012345", "later", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "");
    let fx = h.e.heal(h.now);
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CMTI: \"SM\",1\r\n");
}

#[test]
fn text_mode_submit_is_logged() {
    let mut h = quiet(SimProfile::Generic);
    h.at("AT+CMGF=1;+CSMP=49,167,0,0");
    assert_eq!(h.at("AT+CMGS=\"+4915112345678\""), "\r\n> ");
    assert_eq!(h.send("Server down\x1a"), "\r\n+CMGS: 0\r\n\r\nOK\r\n");
    assert_eq!(
        sms_texts(&h),
        vec![(
            "+4915112345678".to_string(),
            "Server down".to_string(),
            vec![0]
        )]
    );
    assert!(h
        .timers
        .iter()
        .any(|(_, t)| matches!(t, Timer::StatusReport { .. })));
}

#[test]
fn clac_lists_commands_where_the_module_has_it() {
    let mut h = quiet(SimProfile::Ec25);
    let r = h.at("AT+CLAC");
    assert!(
        r.contains("\r\n+CMGS\r\n") && r.contains("\r\n+QTONEDET\r\n"),
        "{r:?}"
    );
    assert!(r.ends_with("\r\nOK\r\n"));
    let mut h = quiet(SimProfile::Sim800);
    assert_eq!(h.at("AT+CLAC"), "\r\nERROR\r\n");
}

#[test]
fn parts_of_an_incoming_message_arrive_apart_when_delays_are_on() {
    let mut cfg = SimConfig::fast(SimProfile::Generic, PathBuf::from("/x"));
    cfg.command_delay = Duration::from_millis(100);
    let mut h = Harness::with(cfg);
    h.at("ATE0");
    let fx =
        h.e.deliver_sms(
            "+4917012345",
            &"y".repeat(200),
            DeliverOptions::default(),
            h.now,
        )
        .unwrap();
    h.apply(fx);
    assert_eq!(h.take(), "\r\n+CMTI: \"SM\",1\r\n");
    assert_eq!(h.fire(), "\r\n+CMTI: \"SM\",2\r\n");
}

#[test]
fn submit_delays_vary_within_the_jitter() {
    let mut cfg = SimConfig::fast(SimProfile::Generic, PathBuf::from("/x"));
    cfg.sms_delay = Duration::from_secs(2);
    cfg.sms_delay_jitter = Duration::from_secs(1);
    let mut e = Engine::new(cfg, DateTime::<Utc>::from_timestamp(0, 0).unwrap());
    let delays: Vec<Duration> = (0..50).map(|_| e.submit_delay()).collect();
    assert!(delays
        .iter()
        .all(|d| (Duration::from_secs(1)..=Duration::from_secs(3)).contains(d)));
    assert!(delays.iter().any(|d| *d != delays[0]), "they vary");
}

#[test]
fn cmgw_stores_and_cmss_sends_from_storage() {
    let mut h = quiet(SimProfile::Generic);
    h.at("AT+CMEE=1");
    assert_eq!(h.at("AT+CMGW=23"), "\r\n> ");
    assert_eq!(
        h.send(&format!("{}\x1a", &HELLO[2..])),
        "\r\n+CMGW: 1\r\n\r\nOK\r\n"
    );
    assert!(h
        .at("AT+CMGR=1")
        .starts_with(&format!("\r\n+CMGR: 2,,23\r\n{HELLO}\r\n")));
    assert!(h.log.is_empty(), "stored, not sent");
    assert_eq!(h.at("AT+CMSS=1"), "\r\n+CMSS: 0\r\n\r\nOK\r\n");
    assert!(
        h.at("AT+CMGL=3").starts_with("\r\n+CMGL: 1,3,,23"),
        "now STO SENT"
    );
    assert_eq!(h.at("AT+CMSS=1,\"+491701\""), "\r\n+CMSS: 1\r\n\r\nOK\r\n");
    assert_eq!(
        sms_texts(&h),
        vec![
            (
                "+46708251358".to_string(),
                "hellohello".to_string(),
                vec![0]
            ),
            ("+491701".to_string(), "hellohello".to_string(), vec![1]),
        ]
    );
    assert_eq!(h.at("AT+CMSS=7"), "\r\n+CMS ERROR: 321\r\n");
    // Text mode.
    h.at("AT+CMGF=1");
    assert_eq!(h.at("AT+CMGW=\"+4917\""), "\r\n> ");
    assert_eq!(h.send("draft\x1a"), "\r\n+CMGW: 2\r\n\r\nOK\r\n");
    assert_eq!(
        h.at("AT+CMGR=2"),
        "\r\n+CMGR: \"STO UNSENT\",\"+4917\",\"\"\r\ndraft\r\n\r\nOK\r\n"
    );
    // A received message cannot be sent again.
    let fx =
        h.e.deliver_sms("+4917012345", "in", DeliverOptions::default(), h.now)
            .unwrap();
    h.apply(fx);
    h.take();
    assert_eq!(h.at("AT+CMSS=3"), "\r\n+CMS ERROR: 302\r\n");
}

#[test]
fn overlong_lines_are_refused() {
    let mut h = quiet(SimProfile::Generic);
    let long = format!("AT+CSCA=\"{}\"", "1".repeat(MAX_LINE + 10));
    assert_eq!(h.at(&long), "\r\nERROR\r\n");
    assert_eq!(h.at("AT"), "\r\nOK\r\n");
}

#[test]
fn cusd_answers_ok_then_the_network_answer_per_code() {
    use crate::modem::sim::types::UssdReply;
    let mut h = quiet(SimProfile::Sim800);
    h.e.set_ussd(
        "*100#",
        UssdReply::Text {
            text: "Balance: 12.34 EUR".into(),
            ucs2: false,
        },
    );
    h.e.set_ussd(
        "*101#",
        UssdReply::Text {
            text: "Guthaben: 3,50 €".into(),
            ucs2: true,
        },
    );
    h.e.set_ussd("*102#", UssdReply::NetworkTerminated);
    h.e.set_ussd("*103#", UssdReply::Timeout);
    assert_eq!(h.at("AT+CUSD=1,\"*100#\",15"), "\r\nOK\r\n");
    assert_eq!(h.fire(), "\r\n+CUSD: 0,\"Balance: 12.34 EUR\",15\r\n");
    assert_eq!(h.at("AT+CUSD=1,\"*101#\",15"), "\r\nOK\r\n");
    assert_eq!(
        h.fire(),
        "\r\n+CUSD: 0,\"0047007500740068006100620065006E003A00200033002C00350030002020AC\",72\r\n"
    );
    assert_eq!(h.at("AT+CUSD=1,\"*102#\""), "\r\nOK\r\n");
    assert_eq!(h.fire(), "\r\n+CUSD: 2\r\n");
    assert_eq!(h.at("AT+CUSD=1,\"*999#\""), "\r\nOK\r\n");
    assert_eq!(h.fire(), "\r\n+CUSD: 4\r\n");
    assert_eq!(h.at("AT+CUSD=1,\"*103#\""), "\r\nOK\r\n");
    assert_eq!(h.fire(), "");
    assert_eq!(h.at("AT+CUSD=2"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CUSD=?"), "\r\n+CUSD: (0-2)\r\n\r\nOK\r\n");
}

#[test]
fn cusd_needs_sim_and_network() {
    let mut h = quiet(SimProfile::Ec25);
    h.at("AT+CMEE=1");
    h.e.fault(Fault::LoseRegistration { searching: true }, h.now)
        .into_iter()
        .for_each(|e| h.apply(vec![e]));
    h.take();
    assert_eq!(h.at("AT+CUSD=1,\"*100#\""), "\r\n+CME ERROR: 30\r\n");
    let fx = h.e.heal(h.now);
    h.apply(fx);
    h.e.fault(Fault::SimMissing, h.now)
        .into_iter()
        .for_each(|e| h.apply(vec![e]));
    h.take();
    assert_eq!(h.at("AT+CUSD=1,\"*100#\""), "\r\n+CME ERROR: 10\r\n");
}

#[test]
fn chup_test_form_leaves_a_ringing_call_alone() {
    let mut h = quiet(SimProfile::Sim7600);
    let fx = h.e.call_in(Some("+4917012345"), h.now).unwrap();
    h.apply(fx);
    h.take();
    assert_eq!(h.at("AT+CHUP=?"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CHUP?"), "\r\nERROR\r\n");
    assert!(h.at("AT+CLCC").contains("+CLCC: 1,1,4,"), "still ringing");
    assert!(h.fire_one().contains("RING"), "rings on");
    assert_eq!(h.at("AT+CHUP"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CLCC"), "\r\nOK\r\n");
}

#[test]
fn cops_format_set_with_mode_3_is_honoured_by_the_read_form() {
    let mut h = quiet(SimProfile::Ec25);
    assert_eq!(
        h.at("AT+COPS?"),
        "\r\n+COPS: 0,0,\"pagerbox net\",7\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+COPS=3,2"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+COPS?"), "\r\n+COPS: 0,2,\"26299\",7\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+COPS=3,1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+COPS?"), "\r\n+COPS: 0,1,\"PBNET\",7\r\n\r\nOK\r\n");
    // Automatic selection with a format; manual selection of the one network there is.
    assert_eq!(h.at("AT+COPS=0,0"), "\r\nOK\r\n");
    assert!(h.at("AT+COPS?").contains("+COPS: 0,0,\"pagerbox net\""));
    assert_eq!(h.at("AT+COPS=1,2,\"26299\""), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CMEE=1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+COPS=1,2,\"26201\""), "\r\n+CME ERROR: 30\r\n");
    assert_eq!(h.at("AT+COPS=3,7"), "\r\n+CME ERROR: 50\r\n");
    assert_eq!(h.at("AT+COPS=2"), "\r\n+CME ERROR: 3\r\n");
    assert!(h
        .at("AT+COPS=?")
        .starts_with("\r\n+COPS: (2,\"pagerbox net\",\"PBNET\",\"26299\",7)"));
    // The bare command is automatic selection, not a read.
    assert_eq!(h.at("AT+COPS"), "\r\nOK\r\n");
    // A reboot restores the long format.
    assert_eq!(h.at("AT+COPS=3,2"), "\r\nOK\r\n");
    assert_eq!(h.at("ATZ"), "\r\nOK\r\n");
    assert!(h.at("AT+COPS?").contains("+COPS: 0,0,"));
}

#[test]
fn ccwa_forms() {
    let mut h = quiet(SimProfile::Sim800);
    assert_eq!(h.at("AT+CCWA=?"), "\r\n+CCWA: (0,1)\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA?"), "\r\n+CCWA: 0\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA?"), "\r\n+CCWA: 1\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=1,2"), "\r\n+CCWA: 0,7\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=1,1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=1,2,1"), "\r\n+CCWA: 1,1\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=0,0"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=1,2"), "\r\n+CCWA: 0,7\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CMEE=1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CCWA=5"), "\r\n+CME ERROR: 50\r\n");
}

#[test]
fn cbc_answers_as_each_module_does() {
    let cases = [
        (
            SimProfile::Generic,
            "\r\n+CBC: (0-3),(0-100)\r\n\r\nOK\r\n",
            "+CBC: 0,100",
        ),
        (
            SimProfile::Sim800,
            "\r\n+CBC: (0-2),(1-100),(voltage)\r\n\r\nOK\r\n",
            "+CBC: 0,95,4118",
        ),
        (SimProfile::Sim7600, "\r\nOK\r\n", "+CBC: 3.800V"),
        (SimProfile::Ec25, "\r\nOK\r\n", "+CBC: 0,95,4118"),
    ];
    for (profile, test, exec) in cases {
        let mut h = quiet(profile);
        assert_eq!(h.at("AT+CBC=?"), test, "{profile:?}");
        assert_eq!(
            h.at("AT+CBC"),
            format!("\r\n{exec}\r\n\r\nOK\r\n"),
            "{profile:?}"
        );
        assert_eq!(h.at("AT+CBC?"), "\r\nERROR\r\n", "{profile:?}");
    }
}

#[test]
fn cpbs_forms() {
    let mut h = quiet(SimProfile::Sim7600);
    assert_eq!(
        h.at("AT+CPBS=?"),
        "\r\n+CPBS: (\"SM\",\"DC\",\"FD\",\"LD\",\"MC\",\"ME\",\"RC\",\"EN\",\"ON\")\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CPBS?"), "\r\n+CPBS: \"SM\",0,250\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CPBS=\"ME\""), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CPBS?"), "\r\n+CPBS: \"ME\",0,100\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CPBS=\"SM\""), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CMEE=1"), "\r\nOK\r\n");
    assert_eq!(h.at("AT+CPBS=\"XX\""), "\r\n+CME ERROR: 50\r\n");
    let mut h = quiet(SimProfile::Sim800);
    assert_eq!(
        h.at("AT+CPBS=?"),
        "\r\n+CPBS: (\"SM\",\"LD\",\"FD\",\"ON\",\"MC\",\"RC\")\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CPBS=\"ME\""), "\r\nERROR\r\n");
}

#[test]
fn cpas_cnum_csq_and_cgatt_forms() {
    let mut h = quiet(SimProfile::Generic);
    assert_eq!(h.at("AT+CPAS=?"), "\r\n+CPAS: (0-5)\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CPAS"), "\r\n+CPAS: 0\r\n\r\nOK\r\n");
    assert_eq!(h.at("AT+CPAS?"), "\r\nERROR\r\n");
    assert_eq!(h.at("AT+CNUM=?"), "\r\nOK\r\n");
    assert!(h.at("AT+CNUM").starts_with("\r\n+CNUM: "));
    assert_eq!(h.at("AT+CSQ?"), "\r\nERROR\r\n");
    assert_eq!(
        h.at("AT+CSQ=?"),
        "\r\n+CSQ: (0-31,99),(0-7,99)\r\n\r\nOK\r\n"
    );
    assert_eq!(h.at("AT+CGATT=?"), "\r\n+CGATT: (0,1)\r\n\r\nOK\r\n");
}

/// The test form of every command the simulator lists answers `OK`, and neither it nor the read
/// form changes anything: a client probing `=?` or `?` during a ringing call (gammu does on
/// connect) must not end it, and the settings read back the same.
#[test]
fn every_test_and_read_form_leaves_calls_and_settings_alone() {
    for profile in [
        SimProfile::Generic,
        SimProfile::Sim800,
        SimProfile::Sim7600,
        SimProfile::Ec25,
    ] {
        let mut h = quiet(profile);
        h.at("AT+CMEE=1");
        let fx = h.e.call_in(Some("+4917012345"), h.now).unwrap();
        h.apply(fx);
        h.take();
        let before = h.at("AT+CMEE?;+CREG?;+CNMI?;+CMGF?;+CSCS?;+CPMS?;+CLIP?;+COPS?;+CFUN?");
        let mut names: Vec<String> = SUPPORTED
            .iter()
            .filter(|c| c.starts_with('+'))
            .map(|c| c.to_string())
            .collect();
        names.extend(profile.dtmf().0.map(str::to_string));
        names.extend(profile.tts_command().map(str::to_string));
        if profile.has_lte() {
            names.push("+CEREG".into());
        }
        for name in names {
            if name == "+CLAC" && matches!(profile, SimProfile::Sim800 | SimProfile::Sim7600) {
                continue;
            }
            let got = h.at(&format!("AT{name}=?"));
            assert!(
                got.ends_with("\r\nOK\r\n"),
                "{profile:?} AT{name}=? answered {got:?}"
            );
            assert!(
                h.at("AT+CLCC").contains("+CLCC: 1,1,4,"),
                "{profile:?} AT{name}=? ended the ringing call"
            );
            // The read form may be refused, but never acts either.
            let got = h.at(&format!("AT{name}?"));
            assert!(
                got.ends_with("OK\r\n") || got.contains("ERROR"),
                "{profile:?} AT{name}? answered {got:?}"
            );
            assert!(
                h.at("AT+CLCC").contains("+CLCC: 1,1,4,"),
                "{profile:?} AT{name}? ended the ringing call"
            );
        }
        let after = h.at("AT+CMEE?;+CREG?;+CNMI?;+CMGF?;+CSCS?;+CPMS?;+CLIP?;+COPS?;+CFUN?");
        assert_eq!(before, after, "{profile:?}: a test form changed a setting");
        assert!(
            !h.log.iter().any(|e| matches!(e, NetworkEntry::Call { .. })),
            "{profile:?}: {:?}",
            h.log
        );
    }
}
