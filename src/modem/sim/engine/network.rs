//! SIM and network: `+CPIN` (PIN/PUK), registration (`+CREG`/`+CGREG`/`+CEREG` and their
//! URCs), `+COPS`, `+CFUN`; and what losing or regaining registration does to held messages
//! and calls.

use super::*;

impl Engine {
    pub(super) fn sim_check_cme(&self) -> Result<(), Final> {
        match self.sim {
            SimState::Ready => Ok(()),
            SimState::PinRequired { .. } => Err(Final::Cme(11)),
            SimState::PukRequired { .. } => Err(Final::Cme(12)),
            SimState::Missing => Err(Final::Cme(10)),
        }
    }

    pub(super) fn sim_check_cms(&self) -> Result<(), Final> {
        match self.sim {
            SimState::Ready => Ok(()),
            SimState::PinRequired { .. } => Err(Final::Cms(311)),
            SimState::PukRequired { .. } => Err(Final::Cms(312)),
            SimState::Missing => Err(Final::Cms(310)),
        }
    }

    pub(super) fn cpin_text(&self) -> Option<&'static str> {
        match self.sim {
            SimState::Ready => Some("READY"),
            SimState::PinRequired { .. } => Some("SIM PIN"),
            SimState::PukRequired { .. } => Some("SIM PUK"),
            SimState::Missing => None,
        }
    }

    pub(super) fn cpin(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
        match op {
            Op::Test => ok(),
            Op::Read | Op::Exec => match self.cpin_text() {
                Some(t) => Step::Done(vec![vec![format!("+CPIN: {t}")]]),
                None => Step::Fail(Final::Cme(10)),
            },
            Op::Set(a) => {
                let args = split_args(a);
                let first = args
                    .first()
                    .cloned()
                    .flatten()
                    .map(|a| a.text().to_string());
                let second = args.get(1).cloned().flatten().map(|a| a.text().to_string());
                match (self.sim, first) {
                    (SimState::Missing, _) => Step::Fail(Final::Cme(10)),
                    (SimState::Ready, _) => Step::Fail(Final::Cme(3)),
                    (_, None) => Step::Fail(Final::Cme(50)),
                    (SimState::PinRequired { attempts_left }, Some(pin)) => {
                        if Some(&pin) == self.cfg.pin.as_ref() {
                            self.unlock(after);
                            ok()
                        } else if attempts_left <= 1 {
                            self.sim = SimState::PukRequired { attempts_left: 10 };
                            after.push(self.cpin_urc());
                            Step::Fail(Final::Cme(16))
                        } else {
                            self.sim = SimState::PinRequired {
                                attempts_left: attempts_left - 1,
                            };
                            Step::Fail(Final::Cme(16))
                        }
                    }
                    (SimState::PukRequired { attempts_left }, Some(puk)) => {
                        if puk == SIM_PUK && second.is_some() {
                            self.cfg.pin = second;
                            self.unlock(after);
                            ok()
                        } else {
                            self.sim = SimState::PukRequired {
                                attempts_left: attempts_left.saturating_sub(1),
                            };
                            Step::Fail(Final::Cme(16))
                        }
                    }
                }
            }
        }
    }

    pub(super) fn cpin_urc(&self) -> Effect {
        let t = self.cpin_text().unwrap_or("NOT INSERTED");
        self.urc(&[format!("+CPIN: {t}")])
    }

    /// The SIM became usable: banners, registration, held messages.
    pub(super) fn unlock(&mut self, after: &mut Vec<Effect>) {
        let was = self.registered();
        self.sim = SimState::Ready;
        if self.cfg.profile.reports_cpin() {
            after.push(self.cpin_urc());
        }
        for b in self.cfg.profile.ready_banners() {
            after.push(self.urc(&[b.to_string()]));
        }
        self.registration_changed(was, after);
    }

    /// Whether the modem is registered to the (simulated) home network.
    pub(super) fn registered(&self) -> bool {
        self.booted
            && self.sim == SimState::Ready
            && self.cfun == 1
            && self.reg_fault.is_none()
            && !self.sim_pulled
    }

    pub(super) fn reg_stat(&self) -> u8 {
        if self.registered() {
            1
        } else if self.sim == SimState::Ready && self.cfun == 1 && self.reg_fault != Some(false) {
            2
        } else {
            0
        }
    }

    pub(super) fn reg_line(&self, name: &str, n: u8, unsolicited: bool) -> String {
        let stat = self.reg_stat();
        let mut s = if unsolicited {
            format!("{name}: {stat}")
        } else {
            format!("{name}: {n},{stat}")
        };
        if n >= 2 && stat == 1 {
            let act = self.cfg.profile.access_technology();
            if name == "+CEREG" {
                s.push_str(",\"1A2B\",\"01A2B3C4\"");
            } else {
                s.push_str(",\"1A2B\",\"B3C4\"");
            }
            if let Some(act) = act {
                s.push_str(&format!(",{act}"));
            }
        }
        s
    }

    pub(super) fn registration(&mut self, op: &Op, name: &str) -> Step {
        let n = match name {
            "+CREG" => self.set.creg,
            "+CGREG" => self.set.cgreg,
            _ => self.set.cereg,
        };
        match op {
            Op::Test => Step::Done(vec![vec![format!("{name}: (0-2)")]]),
            Op::Read | Op::Exec => Step::Done(vec![vec![self.reg_line(name, n, false)]]),
            Op::Set(a) => match a.trim().parse::<u8>() {
                Ok(v) if v <= 2 => {
                    match name {
                        "+CREG" => self.set.creg = v,
                        "+CGREG" => self.set.cgreg = v,
                        _ => self.set.cereg = v,
                    }
                    ok()
                }
                _ => Step::Fail(Final::Cme(50)),
            },
        }
    }

    /// Emits `+CREG`/`+CGREG`/`+CEREG` URCs if the state changed, and hands held messages over
    /// once the modem is reachable again.
    pub(super) fn registration_changed(&mut self, was: bool, fx: &mut Vec<Effect>) {
        let now_reg = self.registered();
        if was == now_reg {
            return;
        }
        let mut regs = vec![("+CREG", self.set.creg), ("+CGREG", self.set.cgreg)];
        if self.cfg.profile.has_lte() {
            regs.push(("+CEREG", self.set.cereg));
        }
        for (name, n) in regs {
            if n >= 1 {
                let line = self.reg_line(name, n, true);
                fx.push(self.urc(&[line]));
            }
        }
        if now_reg {
            while let Some((from, text, opts)) = self.network_queue.pop_front() {
                match self.deliver_now(&from, &text, opts) {
                    Ok(more) => fx.extend(more),
                    Err(e) => tracing::warn!(error = %e, "simulator dropped a held message"),
                }
            }
        } else if let Some(call) = self.call.take() {
            let outcome = if call.answered.is_some() {
                CallOutcome::Answered
            } else {
                CallOutcome::Failed
            };
            fx.push(self.urc(&["NO CARRIER".to_string()]));
            fx.push(self.call_log(&call, outcome));
        }
    }

    /// `+COPS` (27.007 §7.3). The read form names the operator in the format last chosen with
    /// `<mode>` 3 (or any set form that carries `<format>`): 0 long, 1 short, 2 numeric. The
    /// execution form is the set form with every parameter omitted (automatic selection).
    pub(super) fn cops(&mut self, op: &Op) -> Step {
        let act = self
            .cfg
            .profile
            .access_technology()
            .map(|a| format!(",{a}"))
            .unwrap_or_default();
        match op {
            Op::Read => {
                if self.registered() {
                    let format = self.set.cops_format;
                    let name = match format {
                        0 => OPERATOR,
                        1 => OPERATOR_SHORT,
                        _ => OPERATOR_NUMERIC,
                    };
                    Step::Done(vec![vec![format!("+COPS: 0,{format},\"{name}\"{act}")]])
                } else {
                    Step::Done(vec![vec!["+COPS: 0".into()]])
                }
            }
            Op::Exec => ok(),
            Op::Test => Step::Done(vec![vec![format!(
                "+COPS: (2,\"{OPERATOR}\",\"{OPERATOR_SHORT}\",\"{OPERATOR_NUMERIC}\"{act}),,(0-4),(0-2)"
            )]]),
            Op::Set(a) => {
                let args = split_args(a);
                let number = |i: usize| args.get(i).cloned().flatten().map(|a| a.number());
                let mode = match number(0) {
                    None => 0,
                    Some(Some(m @ 0..=4)) => m,
                    Some(_) => return Step::Fail(Final::Cme(50)),
                };
                let format = match number(1) {
                    None => None,
                    Some(Some(f @ 0..=2)) => Some(f as u8),
                    Some(_) => return Step::Fail(Final::Cme(50)),
                };
                let oper = args.get(2).cloned().flatten().map(|a| a.text().to_string());
                match mode {
                    // Manual selection: only the one network this SIM may use is found.
                    1 | 4 => match (&oper, format) {
                        (None, _) | (_, None) => return Step::Fail(Final::Cme(50)),
                        (Some(o), Some(f)) => {
                            let known = match f {
                                0 => OPERATOR,
                                1 => OPERATOR_SHORT,
                                _ => OPERATOR_NUMERIC,
                            };
                            if o != known && mode == 1 {
                                // 27.007: "no network service" when the operator is not found.
                                return Step::Fail(Final::Cme(30));
                            }
                        }
                    },
                    // Deregistration is not simulated (the network fault does that); refuse it
                    // rather than pretend.
                    2 => return Step::Fail(Final::Cme(3)),
                    _ => {}
                }
                if let Some(f) = format {
                    self.set.cops_format = f;
                }
                ok()
            }
        }
    }

    pub(super) fn cfun(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
        match op {
            Op::Read | Op::Exec => Step::Done(vec![vec![format!("+CFUN: {}", self.cfun)]]),
            Op::Test => Step::Done(vec![vec!["+CFUN: (0,1,4),(0,1)".into()]]),
            Op::Set(a) => {
                let args = split_args(a);
                let fun = args.first().cloned().flatten().and_then(|a| a.number());
                let reset = args.get(1).cloned().flatten().and_then(|a| a.number()) == Some(1);
                match fun {
                    Some(f @ (0 | 1 | 4)) => {
                        if reset {
                            // OK first, then the module reboots: banners again.
                            after.push(Effect::Schedule {
                                after: self.cfg.command_delay,
                                timer: Timer::Boot {
                                    gen: self.boot_gen,
                                    stage: u8::MAX,
                                },
                            });
                            return ok();
                        }
                        let was = self.registered();
                        self.cfun = f as u8;
                        self.registration_changed(was, after);
                        ok()
                    }
                    _ => Step::Fail(Final::Cme(50)),
                }
            }
        }
    }
}
