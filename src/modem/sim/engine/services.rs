//! Supplementary and equipment commands that clients ask about on connect though paging does
//! not need them: call waiting (`+CCWA`, 27.007 §7.12), battery charge (`+CBC`, §8.4) and the
//! phonebook storage (`+CPBS`, §8.11). Answers follow each profile's manual, because a client
//! that gets `ERROR` where the real module answers takes a different (untested) path.

use super::*;

/// Phonebooks a profile lists for `AT+CPBS=?`, with the size its read form reports.
fn phonebooks(p: SimProfile) -> &'static [(&'static str, u16)] {
    match p {
        SimProfile::Generic => &[("SM", 250), ("ME", 100)],
        SimProfile::Sim800 => &[
            ("SM", 250),
            ("LD", 10),
            ("FD", 20),
            ("ON", 4),
            ("MC", 10),
            ("RC", 10),
        ],
        SimProfile::Sim7600 | SimProfile::Ec25 => &[
            ("SM", 250),
            ("DC", 10),
            ("FD", 20),
            ("LD", 10),
            ("MC", 10),
            ("ME", 100),
            ("RC", 10),
            ("EN", 5),
            ("ON", 4),
        ],
    }
}

impl Engine {
    /// `+CCWA=[<n>[,<mode>[,<class>]]]`: `<n>` switches the URC, `<mode>` 0/1 disables or
    /// enables the service in the network, 2 queries it (`+CCWA: <status>,<class>`).
    pub(super) fn ccwa(&mut self, op: &Op) -> Step {
        match op {
            Op::Test => Step::Done(vec![vec!["+CCWA: (0,1)".into()]]),
            Op::Read => Step::Done(vec![vec![format!(
                "+CCWA: {}",
                u8::from(self.set.ccwa_urc)
            )]]),
            Op::Exec => {
                self.set.ccwa_urc = false;
                ok()
            }
            Op::Set(a) => {
                let args = split_args(a);
                let number = |i: usize| args.get(i).cloned().flatten().map(|a| a.number());
                let n = match number(0) {
                    None => false,
                    Some(Some(0)) => false,
                    Some(Some(1)) => true,
                    Some(_) => return Step::Fail(Final::Cme(50)),
                };
                let mode = match number(1) {
                    None => None,
                    Some(Some(m @ 0..=2)) => Some(m),
                    Some(_) => return Step::Fail(Final::Cme(50)),
                };
                let class = match number(2) {
                    None => 7,
                    Some(Some(c @ 1..=255)) => c,
                    Some(_) => return Step::Fail(Final::Cme(50)),
                };
                self.set.ccwa_urc = n;
                let Some(mode) = mode else {
                    return ok();
                };
                // Changing or asking the service is a network transaction.
                if let Err(f) = self.sim_check_cme() {
                    return Step::Fail(f);
                }
                if !self.registered() {
                    return Step::Fail(Final::Cme(30));
                }
                match mode {
                    0 => self.call_waiting = false,
                    1 => self.call_waiting = true,
                    _ => {
                        // Voice (class 1) is what the subscription has.
                        let line = if self.call_waiting && class & 1 == 1 {
                            "+CCWA: 1,1".to_string()
                        } else {
                            format!("+CCWA: 0,{class}")
                        };
                        return Step::Done(vec![vec![line]]);
                    }
                }
                ok()
            }
        }
    }

    /// `+CBC`: SIM800 and EC25 answer `<bcs>,<bcl>,<voltage in mV>`, SIM7600 only the supply
    /// voltage (`+CBC: 3.800V`), 27.007 `<bcs>,<bcl>`. The simulated module runs from a
    /// steady supply.
    pub(super) fn cbc(&mut self, op: &Op) -> Step {
        let profile = self.cfg.profile;
        match op {
            Op::Test => match profile {
                SimProfile::Generic => Step::Done(vec![vec!["+CBC: (0-3),(0-100)".into()]]),
                SimProfile::Sim800 => {
                    Step::Done(vec![vec!["+CBC: (0-2),(1-100),(voltage)".into()]])
                }
                SimProfile::Sim7600 | SimProfile::Ec25 => ok(),
            },
            Op::Exec => Step::Done(vec![vec![match profile {
                SimProfile::Generic => "+CBC: 0,100".to_string(),
                SimProfile::Sim800 | SimProfile::Ec25 => "+CBC: 0,95,4118".to_string(),
                SimProfile::Sim7600 => "+CBC: 3.800V".to_string(),
            }]]),
            Op::Read | Op::Set(_) => Step::Fail(Final::Error),
        }
    }

    /// `+CPBS`: the phonebook storage. Entries are not simulated (every book is empty), but
    /// selecting and reading the storage behave as on the module.
    pub(super) fn cpbs(&mut self, op: &Op) -> Step {
        let books = phonebooks(self.cfg.profile);
        match op {
            Op::Test => {
                let list: Vec<String> = books.iter().map(|(b, _)| format!("\"{b}\"")).collect();
                Step::Done(vec![vec![format!("+CPBS: ({})", list.join(","))]])
            }
            Op::Read => {
                if let Err(f) = self.sim_check_cme() {
                    return Step::Fail(f);
                }
                let total = books
                    .iter()
                    .find(|(b, _)| *b == self.set.phonebook)
                    .map_or(0, |(_, t)| *t);
                Step::Done(vec![vec![format!(
                    "+CPBS: \"{}\",0,{total}",
                    self.set.phonebook
                )]])
            }
            Op::Exec => Step::Fail(Final::Error),
            Op::Set(a) => {
                if let Err(f) = self.sim_check_cme() {
                    return Step::Fail(f);
                }
                let wanted = split_args(a)
                    .first()
                    .cloned()
                    .flatten()
                    .map(|a| a.text().to_ascii_uppercase());
                match books.iter().find(|(b, _)| Some(*b) == wanted.as_deref()) {
                    Some((b, _)) => {
                        self.set.phonebook = b;
                        ok()
                    }
                    None => Step::Fail(Final::Cme(50)),
                }
            }
        }
    }
}
