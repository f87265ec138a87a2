//! USSD (`AT+CUSD`, 3GPP TS 27.007 §7.15): the network's answer to a code such as `*100#`
//! (prepaid balance), set per code through the control API ([`UssdReply`]).
//!
//! As on real modules the command answers `OK` at once and the network's answer follows later
//! as the URC `+CUSD: <m>[,"<str>",<dcs>]` (here after `command_delay` + 50 ms). Refusals: no
//! SIM / PIN: CME 10/11/12; not registered: CME 30 (no network service); a second request while
//! one is open is not modelled (each request gets its own answer).

use super::*;
use crate::modem::sim::types::UssdReply;

/// The network's answer time after the `OK` (on top of `command_delay`).
const USSD_ANSWER_DELAY: Duration = Duration::from_millis(50);

impl Engine {
    pub(super) fn cusd(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
        match op {
            Op::Test => Step::Done(vec![vec!["+CUSD: (0-2)".into()]]),
            Op::Read | Op::Exec => Step::Done(vec![vec!["+CUSD: 0".into()]]),
            Op::Set(a) => {
                let args = split_args(a);
                let mode = args
                    .first()
                    .cloned()
                    .flatten()
                    .map(|a| a.text().trim().to_string());
                match mode.as_deref() {
                    Some("0") | Some("1") | Some("2") | None => {}
                    _ => return Step::Fail(Final::Cme(50)),
                }
                let Some(code) = args.get(1).cloned().flatten() else {
                    // Only presentation mode (0/1) or cancel (2): nothing to send.
                    return ok();
                };
                if let Err(f) = self.sim_check_cme() {
                    return Step::Fail(f);
                }
                if !self.registered() {
                    return Step::Fail(Final::Cme(30));
                }
                let code = self.decode_cscs(code.text());
                let reply = self
                    .ussd
                    .get(&code)
                    .cloned()
                    .unwrap_or(UssdReply::NotSupported);
                let line = match reply {
                    UssdReply::Timeout => return ok(),
                    UssdReply::NotSupported => "+CUSD: 4".to_string(),
                    UssdReply::NetworkTerminated => "+CUSD: 2".to_string(),
                    UssdReply::Text { text, ucs2 } => {
                        let (body, dcs) = if ucs2 {
                            (sms::string_to_ucs2_hex(&text), 72)
                        } else {
                            (self.encode_cscs(&text), 15)
                        };
                        format!("+CUSD: 0,\"{body}\",{dcs}")
                    }
                };
                after.push(Effect::Schedule {
                    after: self.cfg.command_delay + USSD_ANSWER_DELAY,
                    timer: Timer::Ussd { line },
                });
                ok()
            }
        }
    }

    /// Sets what the network answers to `code` (replacing an earlier answer).
    pub fn set_ussd(&mut self, code: &str, reply: UssdReply) {
        self.ussd.insert(code.to_string(), reply);
    }
}
