//! Voice calls: `ATD`, `ATA`, `ATH`/`+CHUP`, `+CLCC`, ringing with `+CLIP`, the far phone's
//! behaviour, DTMF detection reports and text-to-speech.

use super::*;

impl Engine {
    pub(super) fn dial(&mut self, number: &str, voice: bool, after: &mut Vec<Effect>) -> Step {
        if let Err(f) = self.sim_check_cme() {
            return Step::Fail(f);
        }
        if !voice {
            // Data calls are not simulated; a data ATD on these modules ends like this too
            // when no data service is subscribed.
            return Step::Fail(Final::NoCarrier);
        }
        if self.call.is_some() {
            return Step::Fail(Final::Cme(3));
        }
        let number: String = number
            .chars()
            .filter(|c| c.is_ascii_digit() || matches!(c, '+' | '*' | '#'))
            .collect();
        if number.is_empty() {
            return Step::Fail(Final::Error);
        }
        if !self.registered() {
            after.push(Effect::Log(NetworkEntry::Call {
                at: self.now,
                direction: CallDirection::Outgoing,
                number,
                outcome: CallOutcome::Failed,
                spoken: Vec::new(),
                dtmf: String::new(),
                duration: Duration::ZERO,
            }));
            return Step::Fail(Final::NoCarrier);
        }
        self.call_gen += 1;
        self.call = Some(Call {
            gen: self.call_gen,
            direction: CallDirection::Outgoing,
            number,
            state: CallState::Dialing,
            started: self.now,
            answered: None,
            spoken: Vec::new(),
            dtmf: String::new(),
        });
        if let Some(e) = self.clcc_urc_effect() {
            after.push(e);
        }
        after.push(Effect::Schedule {
            after: self.cfg.command_delay * 3 + Duration::from_millis(20),
            timer: Timer::Call {
                gen: self.call_gen,
                step: CallStep::Alerting,
            },
        });
        ok()
    }

    pub(super) fn answer_incoming(&mut self, after: &mut Vec<Effect>) -> Step {
        match self.call.as_mut() {
            Some(c) if c.state == CallState::Incoming => {
                c.state = CallState::Active;
                c.answered = Some(self.now);
                if self.cfg.profile.voice_call_urcs() {
                    after.push(self.urc(&["VOICE CALL: BEGIN".to_string()]));
                }
                if let Some(e) = self.clcc_urc_effect() {
                    after.push(e);
                }
                ok()
            }
            _ => Step::Fail(Final::NoCarrier),
        }
    }

    pub(super) fn hang_up(&mut self, after: &mut Vec<Effect>) -> Step {
        if let Some(call) = self.call.take() {
            let outcome = match (call.state, call.direction) {
                (CallState::Active, _) => CallOutcome::Answered,
                (_, CallDirection::Outgoing) => CallOutcome::Cancelled,
                (_, CallDirection::Incoming) => CallOutcome::Rejected,
            };
            if self.cfg.profile.voice_call_urcs() && call.answered.is_some() {
                after.push(self.urc(&[self.voice_call_end(&call)]));
            }
            after.push(self.call_log(&call, outcome));
            if self.set.clcc_urc {
                after.push(self.urc(&[format!(
                    "+CLCC: 1,{},6,0,0,\"{}\",{}",
                    dir_code(call.direction),
                    call.number,
                    toa(&call.number)
                )]));
            }
        }
        ok()
    }

    pub(super) fn voice_call_end(&self, call: &Call) -> String {
        let secs = call
            .answered
            .map(|a| (self.now - a).num_seconds().max(0))
            .unwrap_or(0);
        format!(
            "VOICE CALL: END: {:02}{:02}{:02}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60
        )
    }

    pub(super) fn call_log(&self, call: &Call, outcome: CallOutcome) -> Effect {
        let duration = call
            .answered
            .map(|a| (self.now - a).to_std().unwrap_or_default())
            .unwrap_or_default();
        Effect::Log(NetworkEntry::Call {
            at: call.started,
            direction: call.direction,
            number: call.number.clone(),
            outcome,
            spoken: call.spoken.clone(),
            dtmf: call.dtmf.clone(),
            duration,
        })
    }

    pub(super) fn clcc_records(&self) -> Vec<Vec<String>> {
        match &self.call {
            None => Vec::new(),
            Some(c) => vec![vec![format!(
                "+CLCC: 1,{},{},0,0,\"{}\",{}",
                dir_code(c.direction),
                c.state.clcc(),
                c.number,
                toa(&c.number)
            )]],
        }
    }

    pub(super) fn clcc_urc_effect(&self) -> Option<Effect> {
        if !self.set.clcc_urc {
            return None;
        }
        let recs = self.clcc_records();
        recs.first().map(|r| self.urc(r))
    }

    /// The far end ends an outgoing call attempt or a call in progress with `result`.
    pub(super) fn end_call(&mut self, result: &str, outcome: CallOutcome) -> Vec<Effect> {
        let mut fx = Vec::new();
        if let Some(call) = self.call.take() {
            if self.cfg.profile.voice_call_urcs() && call.answered.is_some() {
                fx.push(self.urc(&[self.voice_call_end(&call)]));
            }
            fx.push(self.urc(&[result.to_string()]));
            fx.push(self.call_log(&call, outcome));
        }
        fx
    }

    pub(super) fn dtmf_detect(&mut self, op: &Op) -> Step {
        let name = self.cfg.profile.dtmf().0.unwrap_or("+DDET");
        match op {
            Op::Read | Op::Exec => Step::Done(vec![vec![format!(
                "{name}: {}",
                u8::from(self.set.dtmf_detect)
            )]]),
            Op::Test => Step::Done(vec![vec![format!("{name}: (0,1)")]]),
            Op::Set(a) => match split_args(a)
                .first()
                .cloned()
                .flatten()
                .and_then(|a| a.number())
            {
                Some(v @ (0 | 1)) => {
                    self.set.dtmf_detect = v == 1;
                    ok()
                }
                _ => Step::Fail(Final::Cme(50)),
            },
        }
    }

    pub(super) fn tts(&mut self, name: &str, op: &Op, after: &mut Vec<Effect>) -> Step {
        match op {
            Op::Test => ok(),
            Op::Read | Op::Exec => Step::Done(vec![vec![format!("{name}: 0")]]),
            Op::Set(a) => {
                let args = split_args(a);
                let mode = args.first().cloned().flatten().and_then(|a| a.number());
                let text = args.get(1).cloned().flatten().map(|a| a.text().to_string());
                match (mode, text) {
                    (Some(0), _) => ok(),
                    (Some(m @ (1 | 2)), Some(t)) => {
                        let text = if m == 1 {
                            match sms::ucs2_hex_to_string(&t) {
                                Some(s) => s,
                                None => return Step::Fail(Final::Cme(50)),
                            }
                        } else {
                            t
                        };
                        let in_call = match self.call.as_mut() {
                            Some(c) if c.state == CallState::Active => {
                                c.spoken.push(text.clone());
                                true
                            }
                            _ => false,
                        };
                        after.push(Effect::Log(NetworkEntry::Tts {
                            at: self.now,
                            text: text.clone(),
                            in_call,
                        }));
                        // Roughly the time a synthesiser takes to say it.
                        let speak = Duration::from_millis(60) * text.chars().count() as u32;
                        let speak = speak.min(self.cfg.ring_timeout);
                        after.push(Effect::Schedule {
                            after: speak,
                            timer: Timer::TtsDone {
                                urc: format!("{name}: 0"),
                            },
                        });
                        ok()
                    }
                    _ => Step::Fail(Final::Cme(50)),
                }
            }
        }
    }

    pub(super) fn far_answer(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        let Some(call) = self.call.as_mut() else {
            return fx;
        };
        call.state = CallState::Active;
        call.answered = Some(self.now);
        let number = call.number.clone();
        if self.set.colp {
            fx.push(self.urc(&[format!("+COLP: \"{number}\",{}", toa(&number))]));
        }
        if self.cfg.profile.voice_call_urcs() {
            fx.push(self.urc(&["VOICE CALL: BEGIN".to_string()]));
        }
        if let Some(e) = self.clcc_urc_effect() {
            fx.push(e);
        }
        fx
    }

    pub(super) fn ring_effects(&mut self) -> Vec<Effect> {
        let Some(call) = self.call.as_ref() else {
            return Vec::new();
        };
        let mut lines = vec![if self.set.crc {
            "+CRING: VOICE".to_string()
        } else {
            "RING".to_string()
        }];
        let clip = self.set.clip.then(|| {
            format!(
                "+CLIP: \"{}\",{},\"\",0,\"\",0",
                call.number,
                toa(&call.number)
            )
        });
        let gen = call.gen;
        let mut fx = vec![self.urc(&lines)];
        if let Some(c) = clip {
            lines = vec![c];
            fx.push(self.urc(&lines));
        }
        fx.push(Effect::Schedule {
            after: self.cfg.ring_interval,
            timer: Timer::Ring { gen },
        });
        fx
    }

    /// A call to the modem from `from` (`None`: number withheld).
    pub fn call_in(
        &mut self,
        from: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        if self.call.is_some() {
            return Err(SimError::Rejected("a call is already in progress".into()));
        }
        if !self.registered() {
            return Err(SimError::Rejected("the modem is not registered".into()));
        }
        self.call_gen += 1;
        self.call = Some(Call {
            gen: self.call_gen,
            direction: CallDirection::Incoming,
            number: from.unwrap_or("").to_string(),
            state: CallState::Incoming,
            started: now,
            answered: None,
            spoken: Vec::new(),
            dtmf: String::new(),
        });
        let mut fx = self.clcc_urc_effect().into_iter().collect::<Vec<_>>();
        fx.extend(self.ring_effects());
        Ok(self.silence_filter(fx))
    }

    /// The far phone picks up the outgoing call.
    pub fn answer(&mut self, now: DateTime<Utc>) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        match self.call.as_ref() {
            Some(c) if c.direction == CallDirection::Outgoing && c.state != CallState::Active => {
                let fx = self.far_answer();
                Ok(self.silence_filter(fx))
            }
            _ => Err(SimError::Rejected("no outgoing call is ringing".into())),
        }
    }

    /// The far side declines a ringing outgoing call, or hangs up any call in progress.
    pub fn reject(&mut self, now: DateTime<Utc>) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        let Some(c) = self.call.as_ref() else {
            return Err(SimError::Rejected("no call".into()));
        };
        let outcome = match (c.state, c.direction) {
            (CallState::Active, _) => CallOutcome::Answered,
            (_, CallDirection::Outgoing) => CallOutcome::Rejected,
            (_, CallDirection::Incoming) => CallOutcome::Missed,
        };
        let fx = self.end_call("NO CARRIER", outcome);
        Ok(self.silence_filter(fx))
    }

    /// The far phone lets the outgoing call ring out: `NO ANSWER` now.
    pub fn ignore(&mut self, now: DateTime<Utc>) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        match self.call.as_ref() {
            Some(c) if c.direction == CallDirection::Outgoing && c.state != CallState::Active => {
                let fx = self.end_call("NO ANSWER", CallOutcome::NoAnswer);
                Ok(self.silence_filter(fx))
            }
            _ => Err(SimError::Rejected("no outgoing call is ringing".into())),
        }
    }

    /// The far side presses a key during an active call.
    pub fn dtmf(&mut self, key: char, now: DateTime<Utc>) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        let key = key.to_ascii_uppercase();
        if !matches!(key, '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(SimError::Rejected(format!("{key:?} is not a DTMF key")));
        }
        let Some(call) = self.call.as_mut().filter(|c| c.state == CallState::Active) else {
            return Err(SimError::Rejected("no active call".into()));
        };
        call.dtmf.push(key);
        if !self.set.dtmf_detect {
            return Ok(Vec::new());
        }
        let line = match self.cfg.profile.dtmf().1 {
            DtmfReport::None => return Ok(Vec::new()),
            DtmfReport::Sim800 => format!("+DTMF:{key}"),
            DtmfReport::Sim7600 => format!("+RXDTMF: {key}"),
            DtmfReport::Quectel => format!("+QTONEDET: {}", key as u32),
        };
        let fx = vec![self.urc(&[line])];
        Ok(self.silence_filter(fx))
    }

    /// What the far phone does with the next outgoing calls.
    pub fn set_call_behaviour(&mut self, b: CallBehaviour) {
        self.behaviour = b;
    }
}
