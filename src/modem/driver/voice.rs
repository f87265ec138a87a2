//! Voice pages in the driver: dial, follow the call by URCs and `AT+CLCC` polling, speak the
//! page where the modem has TTS, listen for a key ("1" acknowledges), hang up.
//!
//! Other URCs that arrive during a call (an SMS reply, a registration change) are handled as
//! usual. A `hang_up`/`reject_incoming` request ends the call at once (e.g. the page was
//! acknowledged by SMS while it rang); an SMS page is sent at once, during the call, so a
//! critical SMS never waits out a voice page's ring time; other requests (status, USSD) are
//! served when the call is over.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tracing::{info, warn};

use super::{CallOptions, CallOutcome, Driver, ModemError, ModemEvent, Request};
use crate::modem::at::response::parse_clcc;
use crate::modem::at::{CallResult, CallState, Urc};
use crate::modem::driver::mask_number;
use crate::modem::engine::{Command, Unsolicited};
use crate::modem::port::PortOpener;

/// How long to wait for a key after the last words (or after answer, without TTS).
const DTMF_WINDOW: Duration = Duration::from_secs(10);
/// Without TTS or DTMF, keep an answered call this long so the callee notices it was a page.
const SILENT_HOLD: Duration = Duration::from_secs(2);

/// What happened while waiting in a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Signal {
    Answered,
    Alerting,
    Ended(CallResult),
    Dtmf(char),
    SpeechDone,
    Tick,
    Shutdown,
    /// A `hang_up` request arrived.
    HangUp,
}

/// `rang`: the far phone may have rung, so a `NO CARRIER` before the answer means the far end
/// (or its network) ended the ringing call: a decline. A `NO CARRIER` as the dial's own result,
/// or after the call was seen still dialling and never ringing, means the network never set the
/// call up: no credit, no voice service, barred.
fn ended_outcome(result: &CallResult, rang: bool) -> CallOutcome {
    match result {
        CallResult::Busy => CallOutcome::Busy,
        CallResult::NoAnswer => CallOutcome::NoAnswer,
        CallResult::NoCarrier if rang => CallOutcome::Rejected,
        CallResult::NoCarrier => CallOutcome::NotSetUp("no carrier".into()),
        CallResult::NoDialtone => CallOutcome::NotSetUp("no dial tone".into()),
        CallResult::Connect(_) => CallOutcome::Failed("data connection".into()),
    }
}

/// A rough speaking time for `text`, so a modem without an end-of-speech URC still gets to
/// finish before the next repeat.
fn speech_estimate(text: &str) -> Duration {
    let ms = 1500 + 75 * text.chars().count() as u64;
    Duration::from_millis(ms.min(60_000))
}

impl<O: PortOpener> Driver<O> {
    pub(super) async fn call(
        &mut self,
        to: &str,
        opts: CallOptions,
    ) -> Result<CallOutcome, ModemError> {
        let valid = !to.is_empty()
            && to.len() <= 20
            && to
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || (c == '+' && i == 0));
        if !valid {
            return Err(ModemError::InvalidNumber { number: to.into() });
        }
        self.ensure_can_send()?;
        info!(to = %mask_number(to), "placing call");
        let r = self
            .exec(Command::dial(format!("ATD{to};"), self.s.command_timeout))
            .await?;
        let outcome = match r.call {
            Some(CallResult::Connect(_)) => self.answered(&opts).await,
            Some(result) => Ok(ended_outcome(&result, false)),
            None => self.follow_call(&opts).await,
        };
        info!(to = %mask_number(to), outcome = ?outcome, "call finished");
        let _ = self.emit(ModemEvent::CallEnded);
        outcome
    }

    /// From dialling to answer (or the end).
    async fn follow_call(&mut self, opts: &CallOptions) -> Result<CallOutcome, ModemError> {
        let deadline = Instant::now() + opts.ring_for;
        let mut missing_polls = 0;
        // Whether the call was seen ringing at the far end, and seen still dialling. Polls come
        // every `call_poll`: a call that ended before any said which, may have rung (a quick
        // decline), so only one seen dialling and never ringing counts as not set up.
        let (mut rang, mut dialling) = (false, false);
        loop {
            let tick = (Instant::now() + self.s.call_poll).min(deadline);
            let signal = match self.call_signal(tick).await {
                Signal::Tick if Instant::now() >= deadline => {
                    self.end_call().await;
                    return Ok(CallOutcome::NoAnswer);
                }
                Signal::Tick => match self.poll_call().await {
                    Some(s) => {
                        missing_polls = 0;
                        dialling |= s == Signal::Tick;
                        s
                    }
                    None if self.engine.is_none() => {
                        return Ok(CallOutcome::Failed("modem port lost".into()))
                    }
                    None => {
                        // Some modems list a call only a moment after ATD; twice gone is gone.
                        missing_polls += 1;
                        if missing_polls < 2 {
                            continue;
                        }
                        Signal::Ended(CallResult::NoCarrier)
                    }
                },
                s => s,
            };
            match signal {
                Signal::Answered => return self.answered(opts).await,
                Signal::Alerting => rang = true,
                Signal::Ended(r) => return Ok(ended_outcome(&r, rang || !dialling)),
                Signal::Shutdown => {
                    self.end_call().await;
                    return Ok(CallOutcome::Failed("shutting down".into()));
                }
                Signal::HangUp => {
                    self.end_call().await;
                    return Ok(CallOutcome::Failed("hung up on request".into()));
                }
                Signal::Dtmf(_) | Signal::SpeechDone | Signal::Tick => {}
            }
        }
    }

    /// The call is up: speak, listen, hang up.
    async fn answered(&mut self, opts: &CallOptions) -> Result<CallOutcome, ModemError> {
        info!("call answered");
        let mut key: Option<char> = None;
        let can_speak = self.profile.speak_command("").is_some();
        if let (Some(text), true) = (opts.speak.as_deref(), can_speak) {
            for round in 0..opts.repeat.max(1) {
                let Some(cmd) = self.profile.speak_command(text) else {
                    break;
                };
                if self.exec_opt(&cmd).await?.is_none() {
                    warn!(round, "text to speech refused");
                    break;
                }
                let until = Instant::now() + speech_estimate(text);
                match self.listen(until, &mut key, true).await {
                    Listen::Ended => return Ok(CallOutcome::Answered { dtmf: key }),
                    Listen::HangUp => {
                        self.end_call().await;
                        return Ok(CallOutcome::Answered { dtmf: key });
                    }
                    Listen::Shutdown => break,
                    Listen::Timeout | Listen::SpeechDone => {}
                }
                if key == Some('1') {
                    break;
                }
            }
        }
        let listen_for = if opts.listen_dtmf && self.profile.reports_dtmf() {
            Some(DTMF_WINDOW)
        } else if opts.speak.is_none() || !can_speak {
            Some(SILENT_HOLD)
        } else {
            None
        };
        if let (Some(window), false) = (listen_for, key == Some('1')) {
            let until = Instant::now() + window;
            loop {
                match self.listen(until, &mut key, false).await {
                    Listen::Ended => return Ok(CallOutcome::Answered { dtmf: key }),
                    Listen::Timeout | Listen::Shutdown | Listen::HangUp => break,
                    Listen::SpeechDone => {}
                }
                if key == Some('1') {
                    break;
                }
            }
        }
        self.end_call().await;
        Ok(CallOutcome::Answered { dtmf: key })
    }

    /// Waits until `until`, recording keys; `'1'` or the end of the call stops early.
    async fn listen(&mut self, until: Instant, key: &mut Option<char>, speaking: bool) -> Listen {
        loop {
            let tick = (Instant::now() + self.s.call_poll).min(until);
            match self.call_signal(tick).await {
                Signal::Ended(_) => return Listen::Ended,
                Signal::Shutdown => return Listen::Shutdown,
                Signal::HangUp => return Listen::HangUp,
                Signal::Dtmf(k) => {
                    if key.is_none() || k == '1' {
                        *key = Some(k);
                    }
                    if k == '1' {
                        return Listen::Timeout;
                    }
                }
                Signal::SpeechDone if speaking => return Listen::SpeechDone,
                Signal::Tick if Instant::now() >= until => return Listen::Timeout,
                Signal::Tick => {
                    if self.poll_call().await.is_none() {
                        return Listen::Ended;
                    }
                }
                Signal::Answered | Signal::Alerting | Signal::SpeechDone => {}
            }
        }
    }

    /// `AT+CLCC`: the state of our outgoing voice call, `None` when there is none.
    async fn poll_call(&mut self) -> Option<Signal> {
        let r = self
            .exec(Command::new("AT+CLCC", self.s.command_timeout))
            .await
            .ok()?;
        let entry = r
            .lines
            .iter()
            .filter_map(|l| parse_clcc(l))
            .find(|e| !e.incoming && e.voice)?;
        match entry.state {
            CallState::Active => Some(Signal::Answered),
            CallState::Alerting => Some(Signal::Alerting),
            CallState::Disconnected => None,
            _ => Some(Signal::Tick),
        }
    }

    /// The next call-relevant thing before `until`; other URCs are handled on the way.
    async fn call_signal(&mut self, until: Instant) -> Signal {
        loop {
            // A call can last minutes: keep handing backlogged events over meanwhile.
            self.flush_events();
            let backlogged = !self.backlog.is_empty();
            let Some(engine) = self.engine.as_mut() else {
                return Signal::Ended(CallResult::NoCarrier);
            };
            let u = match engine.pop_unsolicited() {
                Some(u) => u,
                None => {
                    let got = tokio::select! {
                        biased;
                        _ = self.shutdown.cancelled() => return Signal::Shutdown,
                        r = self.requests.recv() => match r {
                            None => return Signal::Shutdown,
                            Some(Request::HangUp { reply } | Request::RejectIncoming { reply }) => {
                                self.hang_up_waiters.push(reply);
                                return Signal::HangUp;
                            }
                            Some(sms @ Request::SendSms { .. }) => Err(sms),
                            Some(other) => {
                                self.deferred.push_back(other);
                                continue;
                            }
                        },
                        _ = self.events.reserve(), if backlogged => continue,
                        u = engine.next_unsolicited() => Ok(u),
                        _ = sleep_until(until) => return Signal::Tick,
                    };
                    match got {
                        // An SMS page goes out now, during the call: GSM and LTE carry SMS
                        // beside a voice call, and the port is free once `ATD` has answered.
                        // Call URCs that arrive meanwhile wait in the engine's queue.
                        Err(Request::SendSms { to, text, reply }) => {
                            info!(to = %mask_number(&to), "sending an SMS page during a call");
                            let res = self.send_sms(&to, &text).await;
                            let _ = reply.send(res);
                            continue;
                        }
                        Err(other) => {
                            self.deferred.push_back(other);
                            continue;
                        }
                        Ok(Ok(u)) => u,
                        Ok(Err(e)) => {
                            self.lose_port(format!("port lost: {e}"));
                            return Signal::Ended(CallResult::NoCarrier);
                        }
                    }
                }
            };
            match u.urc {
                Urc::VoiceCallBegin => return Signal::Answered,
                Urc::CallEnded(r) => return Signal::Ended(r),
                Urc::VoiceCallEnd => return Signal::Ended(CallResult::NoCarrier),
                Urc::CallList(e) if !e.incoming => match e.state {
                    CallState::Active => return Signal::Answered,
                    CallState::Alerting => return Signal::Alerting,
                    CallState::Disconnected => return Signal::Ended(CallResult::NoCarrier),
                    _ => {}
                },
                Urc::Dtmf { key } => {
                    info!(key = %key, "dtmf received");
                    let _ = self.emit(ModemEvent::Dtmf { key });
                    return Signal::Dtmf(key);
                }
                Urc::SpeechDone => return Signal::SpeechDone,
                urc => {
                    self.on_unsolicited(Unsolicited {
                        urc,
                        body: u.body,
                        at: u.at,
                    })
                    .await;
                }
            }
        }
    }

    /// Hangs up and answers any `hang_up` callers waiting for it.
    async fn end_call(&mut self) {
        let cmd = Command::new(self.profile.hang_up_command(), self.s.command_timeout);
        let res = self.exec(cmd).await;
        if let Err(e) = &res {
            warn!(error = %e, "hang up failed");
        }
        for w in self.hang_up_waiters.drain(..) {
            let _ = w.send(match &res {
                Ok(_) => Ok(()),
                Err(e) => Err(ModemError::Protocol {
                    command: "hang up".into(),
                    detail: e.to_string(),
                }),
            });
        }
    }
}

enum Listen {
    HangUp,
    Ended,
    Timeout,
    SpeechDone,
    Shutdown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_outcomes() {
        assert_eq!(ended_outcome(&CallResult::Busy, false), CallOutcome::Busy);
        assert_eq!(
            ended_outcome(&CallResult::NoCarrier, true),
            CallOutcome::Rejected
        );
        assert!(matches!(
            ended_outcome(&CallResult::NoCarrier, false),
            CallOutcome::NotSetUp(_)
        ));
        assert_eq!(
            ended_outcome(&CallResult::NoAnswer, true),
            CallOutcome::NoAnswer
        );
    }

    #[test]
    fn speech_estimate_is_bounded() {
        assert!(speech_estimate("short") < Duration::from_secs(3));
        assert_eq!(
            speech_estimate(&"x".repeat(10_000)),
            Duration::from_secs(60)
        );
    }
}
