//! USSD requests in the driver (`AT+CUSD`, 3GPP TS 27.007 §7.15): send a code such as `*100#`
//! and wait for the network's `+CUSD` answer, e.g. the prepaid balance for the self-test.
//!
//! The command answers `OK` at once; the answer follows as a URC, seconds later on a real
//! network. Other URCs that arrive meanwhile are handled as usual; an SMS page is sent at once
//! (a network that never answers USSD must not hold pages for the whole timeout); other
//! requests wait (they are served after the answer or the timeout). On timeout the session is cancelled with
//! `AT+CUSD=2` so the next request starts clean. Some modules (and the simulator with
//! `AT+CSCS="UCS2"`) put the answer before the `OK`; that is taken too.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};
use tracing::{debug, info};

use super::{mask_number, Driver, ModemError, Request, MAX_IDLE_WAIT};
use crate::config::selftest::valid_ussd_code;
use crate::modem::at::ussd::{parse_cusd, UssdAnswer};
use crate::modem::at::Urc;
use crate::modem::engine::{Command, Unsolicited};
use crate::modem::port::PortOpener;

impl<O: PortOpener> Driver<O> {
    // Long on purpose: one wait loop: the USSD answer, while every other event keeps flowing.
    pub(super) async fn ussd(
        &mut self,
        code: &str,
        wait: Duration,
    ) -> Result<UssdAnswer, ModemError> {
        if !valid_ussd_code(code) {
            return Err(ModemError::InvalidUssd { code: code.into() });
        }
        if self.engine.is_none() {
            return Err(ModemError::Unavailable {
                reason: self.down_reason.clone(),
            });
        }
        info!(code, "ussd request");
        // dcs 15: the code is in the GSM default alphabet (it is digits, * and #).
        let r = self
            .exec(Command::new(
                format!("AT+CUSD=1,\"{code}\",15"),
                self.s.command_timeout,
            ))
            .await?;
        if let Some(a) = r.line("+CUSD:").and_then(parse_cusd) {
            return Ok(a);
        }
        let deadline = Instant::now() + wait;
        // The driver is alive and serving while it waits, so it beats its heartbeat as its idle
        // loop does, and it asks the modem `AT` once a health interval, as its health poll
        // would: a `ussd_timeout` longer than either bound must read neither as a hung modem
        // task nor as a modem that stopped answering.
        let idle = self
            .s
            .heartbeat
            .idle_bound()
            .min(MAX_IDLE_WAIT)
            .min(self.s.health_interval);
        loop {
            self.s.heartbeat.beat();
            // Keep handing backlogged events over while waiting for the network.
            self.flush_events();
            let backlogged = !self.backlog.is_empty();
            let Some(engine) = self.engine.as_mut() else {
                return Err(ModemError::Unavailable {
                    reason: self.down_reason.clone(),
                });
            };
            let u = match engine.pop_unsolicited() {
                Some(u) => u,
                None => {
                    let got = tokio::select! {
                        biased;
                        _ = self.shutdown.cancelled() => return Err(ModemError::Stopped),
                        r = self.requests.recv() => match r {
                            Some(sms @ Request::SendSms { .. }) => Err(sms),
                            Some(other) => {
                                self.deferred.push_back(other);
                                continue;
                            }
                            None => return Err(ModemError::Stopped),
                        },
                        _ = self.events.reserve(), if backlogged => continue,
                        u = engine.next_unsolicited() => Ok(Some(u)),
                        _ = sleep_until(deadline.min(Instant::now() + idle)) => Ok(None),
                    };
                    let got = match got {
                        // A page does not wait for the balance: the network may take the whole
                        // timeout to answer (or never), and SMS goes out beside an open USSD
                        // session. A `+CUSD` that comes meanwhile waits in the engine's queue.
                        Err(Request::SendSms { to, text, reply }) => {
                            info!(to = %mask_number(&to), "sending an SMS page during a USSD request");
                            let res = self.send_sms(&to, &text).await;
                            let _ = reply.send(res);
                            continue;
                        }
                        Err(other) => {
                            self.deferred.push_back(other);
                            continue;
                        }
                        Ok(got) => got,
                    };
                    let Some(got) = got else {
                        if Instant::now() < deadline {
                            // An answer (even `ERROR`) counts; a lost port ends the wait above.
                            let _ = self.exec_opt("AT").await;
                            continue;
                        }
                        debug!(code, "ussd answer timed out, cancelling the session");
                        let _ = self.exec_opt("AT+CUSD=2").await;
                        return Err(ModemError::UssdTimeout {
                            code: code.into(),
                            after: wait,
                        });
                    };
                    match got {
                        Ok(u) => u,
                        Err(e) => {
                            self.lose_port(format!("port lost: {e}"));
                            return Err(ModemError::Unavailable {
                                reason: self.down_reason.clone(),
                            });
                        }
                    }
                }
            };
            match u.urc {
                Urc::Ussd(a) => {
                    info!(code, status = a.status.describe(), "ussd answer");
                    return Ok(a);
                }
                urc => {
                    self.on_unsolicited(Unsolicited {
                        urc,
                        body: u.body,
                        at: u.at,
                    })
                    .await
                }
            }
        }
    }
}
