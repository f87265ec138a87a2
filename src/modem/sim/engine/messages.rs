//! SMS: settings (`+CSCS`, `+CSCA`, `+CSMS`, `+CPMS`, `+CNMI`, `+CSMP`), submit
//! (`+CMGS` in PDU and text mode), storage (`+CMGR`, `+CMGL`, `+CMGD`), incoming messages
//! (`+CMTI`/`+CMT`) and status reports (`+CDS`/`+CDSI`). PDUs go through [`crate::modem::sim::sms`]
//! (the simulator's adapter to `modem::pdu`).

use super::*;
use crate::modem::sim::command::Arg;

/// Most status reports one burst request writes (about 100 bytes each on the wire).
pub const MAX_REPORT_BURST: u32 = 10_000;

impl Engine {
    /// How long this submit takes: `sms_delay` ± jitter.
    pub(super) fn submit_delay(&mut self) -> Duration {
        let base = self.cfg.sms_delay;
        let jitter = self.cfg.sms_delay_jitter.min(base);
        if jitter.is_zero() {
            return base;
        }
        let spread = u64::try_from(jitter.as_millis()).unwrap_or(u64::MAX);
        let offset = self.rng.u64(0..=spread * 2);
        (base - jitter) + Duration::from_millis(offset)
    }

    pub(super) fn cscs(&mut self, op: &Op) -> Step {
        match op {
            Op::Read | Op::Exec => Step::Done(vec![vec![format!("+CSCS: \"{}\"", self.set.cscs)]]),
            Op::Test => Step::Done(vec![vec!["+CSCS: (\"IRA\",\"GSM\",\"UCS2\")".into()]]),
            Op::Set(a) => match split_args(a).first().cloned().flatten() {
                Some(Arg::Str(s)) if ["IRA", "GSM", "UCS2"].contains(&s.as_str()) => {
                    self.set.cscs = s;
                    ok()
                }
                _ => Step::Fail(Final::Cme(4)),
            },
        }
    }

    pub(super) fn csca(&mut self, op: &Op) -> Step {
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        match op {
            Op::Read | Op::Exec => Step::Done(vec![vec![format!(
                "+CSCA: \"{}\",{}",
                self.csca.0, self.csca.1
            )]]),
            Op::Test => ok(),
            Op::Set(a) => {
                let args = split_args(a);
                match args.first().cloned().flatten() {
                    Some(Arg::Str(s)) => {
                        let s = self.decode_cscs(&s);
                        let t = args
                            .get(1)
                            .cloned()
                            .flatten()
                            .and_then(|a| a.number())
                            .map(|n| n as u8)
                            .unwrap_or_else(|| toa(&s));
                        self.csca = (s, t);
                        ok()
                    }
                    _ => Step::Fail(Final::Cms(304)),
                }
            }
        }
    }

    pub(super) fn csms(&mut self, op: &Op) -> Step {
        match op {
            Op::Read | Op::Exec => {
                Step::Done(vec![vec![format!("+CSMS: {},1,1,1", self.set.csms)]])
            }
            Op::Test => Step::Done(vec![vec!["+CSMS: (0,1)".into()]]),
            Op::Set(a) => match a.trim() {
                v @ ("0" | "1") => {
                    self.set.csms = if v == "1" { 1 } else { 0 };
                    Step::Done(vec![vec!["+CSMS: 1,1,1".into()]])
                }
                _ => Step::Fail(Final::Cms(302)),
            },
        }
    }

    pub(super) fn cpms(&mut self, op: &Op) -> Step {
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        match op {
            Op::Test => {
                let list = "(\"SM\",\"ME\",\"MT\")";
                Step::Done(vec![vec![format!("+CPMS: {list},{list},{list}")]])
            }
            Op::Read | Op::Exec => {
                let parts: Vec<String> = self
                    .set
                    .mems
                    .iter()
                    .map(|m| {
                        let (used, total) = self.storage.usage(*m);
                        format!("\"{}\",{used},{total}", m.as_str())
                    })
                    .collect();
                Step::Done(vec![vec![format!("+CPMS: {}", parts.join(","))]])
            }
            Op::Set(a) => {
                let args = split_args(a);
                if args.is_empty() || args.len() > 3 {
                    return Step::Fail(Final::Cms(302));
                }
                let mut mems = self.set.mems;
                for (i, arg) in args.iter().enumerate() {
                    match arg.as_ref().map(|a| a.text().parse::<Mem>()) {
                        Some(Ok(m)) => mems[i] = m,
                        None => {}
                        Some(Err(_)) => return Step::Fail(Final::Cms(302)),
                    }
                }
                self.set.mems = mems;
                let parts: Vec<String> = mems
                    .iter()
                    .map(|m| {
                        let (used, total) = self.storage.usage(*m);
                        format!("{used},{total}")
                    })
                    .collect();
                Step::Done(vec![vec![format!("+CPMS: {}", parts.join(","))]])
            }
        }
    }

    pub(super) fn cnmi(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
        match op {
            Op::Read | Op::Exec => {
                let c = self.set.cnmi;
                Step::Done(vec![vec![format!(
                    "+CNMI: {},{},{},{},{}",
                    c[0], c[1], c[2], c[3], c[4]
                )]])
            }
            Op::Test => Step::Done(vec![vec!["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)".into()]]),
            Op::Set(a) => {
                let limits = [2u8, 3, 3, 2, 1];
                let mut c = self.set.cnmi;
                for (i, arg) in split_args(a).iter().enumerate() {
                    if i >= 5 {
                        return Step::Fail(Final::Cms(303));
                    }
                    if let Some(arg) = arg {
                        match arg.number() {
                            Some(v) if v <= u32::from(limits[i]) => c[i] = v as u8,
                            _ => return Step::Fail(Final::Cms(303)),
                        }
                    }
                }
                self.set.cnmi = c;
                if c[0] != 0 {
                    let held = std::mem::take(&mut self.cnmi_buffer);
                    if c[4] == 0 {
                        for b in held {
                            after.push(Effect::Write {
                                delay: Duration::ZERO,
                                chunks: vec![b],
                            });
                        }
                    }
                }
                ok()
            }
        }
    }

    pub(super) fn csmp(&mut self, op: &Op) -> Step {
        match op {
            Op::Read | Op::Exec => {
                let (fo, vp, pid, dcs) = self.set.csmp;
                Step::Done(vec![vec![format!("+CSMP: {fo},{vp},{pid},{dcs}")]])
            }
            Op::Test => ok(),
            Op::Set(a) => {
                let nums: Vec<Option<u32>> = split_args(a)
                    .iter()
                    .map(|x| x.as_ref().and_then(Arg::number))
                    .collect();
                let (mut fo, mut vp, mut pid, mut dcs) = self.set.csmp;
                for (i, n) in nums.iter().enumerate() {
                    let Some(n) = n else { continue };
                    let Ok(v) = u8::try_from(*n) else {
                        return Step::Fail(Final::Cms(305));
                    };
                    match i {
                        0 => fo = v,
                        1 => vp = v,
                        2 => pid = v,
                        3 => dcs = v,
                        _ => return Step::Fail(Final::Cms(305)),
                    }
                }
                self.set.csmp = (fo, vp, pid, dcs);
                ok()
            }
        }
    }

    /// Decodes a string parameter per `+CSCS` (UCS2: hex of UTF-16 code units).
    pub(super) fn decode_cscs(&self, s: &str) -> String {
        if self.set.cscs == "UCS2" {
            sms::ucs2_hex_to_string(s).unwrap_or_else(|| s.to_string())
        } else {
            s.to_string()
        }
    }

    pub(super) fn encode_cscs(&self, s: &str) -> String {
        if self.set.cscs == "UCS2" {
            sms::string_to_ucs2_hex(s)
        } else {
            s.to_string()
        }
    }

    pub(super) fn cmgs(&mut self, op: &Op) -> Step {
        match op {
            Op::Test => return ok(),
            Op::Set(_) => {}
            _ => return Step::Fail(Final::Cms(302)),
        }
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let Op::Set(a) = op else {
            return Step::Fail(Final::Cms(302));
        };
        let args = split_args(a);
        if self.set.cmgf == 0 {
            match args.first().cloned().flatten().and_then(|a| a.number()) {
                Some(n) if (7..=164).contains(&n) => Step::Prompt(PromptKind::PduSubmit {
                    tpdu_len: n as usize,
                }),
                _ => Step::Fail(Final::Cms(304)),
            }
        } else {
            match args.first().cloned().flatten() {
                Some(Arg::Str(to)) if !to.is_empty() => Step::Prompt(PromptKind::TextSubmit {
                    to: self.decode_cscs(&to),
                }),
                _ => Step::Fail(Final::Cms(305)),
            }
        }
    }

    /// Input after a `> ` prompt ended with Ctrl-Z.
    pub(super) fn submit(&mut self, kind: PromptKind, body: String) -> Vec<Effect> {
        let text_mode = kind.is_text();
        // Decode first: a malformed PDU is refused at once whatever the network does.
        let parsed = match &kind {
            PromptKind::PduSubmit { tpdu_len } | PromptKind::PduWrite { tpdu_len, .. } => {
                sms::decode_submit(body.trim(), *tpdu_len)
            }
            PromptKind::TextSubmit { to } | PromptKind::TextWrite { to } => {
                let text = self.decode_cscs(body.trim_end_matches('\n'));
                Ok(sms::text_submit(to, &text, self.set.csmp))
            }
        };
        let sub = match parsed {
            Ok(s) => s,
            Err(e) => {
                let code = if text_mode { 305 } else { 304 };
                let delay = self.cfg.command_delay;
                return self.refuse(Final::Cms(code), e.to_string(), delay);
            }
        };
        match kind {
            PromptKind::PduSubmit { .. } | PromptKind::TextSubmit { .. } => {
                self.transmit(sub, "+CMGS").0
            }
            PromptKind::PduWrite { tpdu_len, stat } => {
                let pdu = sms::with_smsc_field(body.trim(), tpdu_len);
                self.store_submit(sub, pdu, tpdu_len, stat)
            }
            PromptKind::TextWrite { .. } => {
                match sms::encode_text_submit(&sub.to, &sub.text, sub.status_report_requested) {
                    Ok((pdu, tpdu_len)) => self.store_submit(sub, pdu, tpdu_len, 2),
                    Err(e) => {
                        let delay = self.cfg.command_delay;
                        self.refuse(Final::Cms(305), e.to_string(), delay)
                    }
                }
            }
        }
    }

    /// A refused submit: the final result after `delay`, and a log entry.
    fn refuse(&self, f: Final, reason: String, delay: Duration) -> Vec<Effect> {
        let mut fx = self.respond(Vec::new(), f, delay);
        let result = String::from_utf8_lossy(&self.final_bytes(f))
            .trim()
            .to_string();
        fx.push(Effect::Log(NetworkEntry::SmsRefused {
            at: self.now,
            result,
            reason,
        }));
        fx
    }

    /// Hands a decoded SMS-SUBMIT to the network: SIM, registration and injected faults are
    /// checked, then it gets the next message reference and `<name>: <mr>` after the submit
    /// delay. Returns the effects and the reference if it was sent.
    fn transmit(&mut self, sub: sms::Submitted, name: &str) -> (Vec<Effect>, Option<u8>) {
        let now = self.now;
        let sms_delay = self.submit_delay();
        if let Err(f) = self.sim_check_cms() {
            return (self.refuse(f, "SIM not ready".into(), sms_delay), None);
        }
        if !self.registered() {
            return (
                self.refuse(Final::Cms(331), "no network service".into(), sms_delay),
                None,
            );
        }
        if let Some((failure, left)) = self.submit_failures {
            self.submit_failures = if left > 1 {
                Some((failure, left - 1))
            } else {
                None
            };
            let f = match failure {
                SubmitFailure::Error => Final::Error,
                SubmitFailure::Cms500 => Final::Cms(500),
            };
            return (self.refuse(f, "injected fault".into(), sms_delay), None);
        }
        let mr = self.next_mr;
        self.next_mr = self.next_mr.wrapping_add(1);
        let mut fx = vec![Effect::Write {
            delay: sms_delay,
            chunks: vec![
                self.urc_bytes(&[format!("{name}: {mr}")]),
                self.final_bytes(Final::Ok),
            ],
        }];
        fx.push(Effect::Log(NetworkEntry::SmsPart {
            at: now,
            to: sub.to.clone(),
            message_reference: mr,
            text: sub.text.clone(),
            encoding: sub.encoding.clone(),
            status_report_requested: sub.status_report_requested,
            concat: sub.concat,
        }));
        if let Some(whole) = self.assembler.push(&sub, mr, now) {
            fx.push(Effect::Log(whole));
        }
        // TP-ST 0x46: validity period expired, the centre gave up on a phone that stayed off.
        let status = if self.undeliverable > 0 {
            self.undeliverable -= 1;
            0x46
        } else {
            0
        };
        if sub.status_report_requested {
            fx.push(Effect::Schedule {
                after: sms_delay + self.cfg.delivery_report_delay,
                timer: Timer::StatusReport {
                    reference: mr,
                    to: sub.to,
                    submitted: now,
                    status,
                },
            });
        }
        (fx, Some(mr))
    }

    /// `AT+CMGW`: stores a SUBMIT in the write storage (`<mem2>`), answers `+CMGW: <index>`.
    fn store_submit(
        &mut self,
        sub: sms::Submitted,
        pdu: String,
        tpdu_len: usize,
        stat: u8,
    ) -> Vec<Effect> {
        let delay = self.cfg.command_delay;
        let slot = Slot {
            stat,
            pdu,
            tpdu_len,
            text: TextView::Submit {
                to: sub.to,
                text: sub.text,
            },
        };
        match self.storage.insert(self.set.mems[1], slot) {
            Some(index) => vec![Effect::Write {
                delay,
                chunks: vec![
                    self.urc_bytes(&[format!("+CMGW: {index}")]),
                    self.final_bytes(Final::Ok),
                ],
            }],
            None => self.respond(Vec::new(), Final::Cms(322), delay),
        }
    }

    pub(super) fn cmgw(&mut self, op: &Op) -> Step {
        let a = match op {
            Op::Test => return ok(),
            Op::Set(a) => a.clone(),
            _ => return Step::Fail(Final::Cms(302)),
        };
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let args = split_args(&a);
        if self.set.cmgf == 0 {
            let len = args.first().cloned().flatten().and_then(|a| a.number());
            let stat = args
                .get(1)
                .cloned()
                .flatten()
                .and_then(|a| a.number())
                .unwrap_or(2);
            match len {
                Some(n) if (7..=164).contains(&n) && (2..=3).contains(&stat) => {
                    Step::Prompt(PromptKind::PduWrite {
                        tpdu_len: n as usize,
                        stat: stat as u8,
                    })
                }
                _ => Step::Fail(Final::Cms(304)),
            }
        } else {
            match args.first().cloned().flatten() {
                Some(Arg::Str(to)) if !to.is_empty() => Step::Prompt(PromptKind::TextWrite {
                    to: self.decode_cscs(&to),
                }),
                _ => Step::Fail(Final::Cms(305)),
            }
        }
    }

    /// `AT+CMSS=<index>[,<da>]`: sends a stored SUBMIT, answers `+CMSS: <mr>`.
    pub(super) fn cmss(&mut self, op: &Op) -> Step {
        let a = match op {
            Op::Test => return ok(),
            Op::Set(a) => a.clone(),
            _ => return Step::Fail(Final::Cms(302)),
        };
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let args = split_args(&a);
        let Some(index) = args
            .first()
            .cloned()
            .flatten()
            .and_then(|a| a.number())
            .map(|n| n as usize)
        else {
            return Step::Fail(Final::Cms(321));
        };
        let mem = self.set.mems[1];
        let Some(slot) = self.storage.get_mut(mem, index).cloned() else {
            return Step::Fail(Final::Cms(321));
        };
        let mut sub = match sms::decode_submit(&slot.pdu, slot.tpdu_len) {
            Ok(s) => s,
            // A received message cannot be sent.
            Err(_) => return Step::Fail(Final::Cms(302)),
        };
        if let Some(Arg::Str(da)) = args.get(1).cloned().flatten() {
            sub.to = self.decode_cscs(&da);
        }
        let (fx, mr) = self.transmit(sub, "+CMSS");
        if mr.is_some() {
            if let Some(s) = self.storage.get_mut(mem, index) {
                s.stat = 3;
            }
        }
        Step::Custom(fx)
    }

    pub(super) fn cmgr(&mut self, op: &Op) -> Step {
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let Op::Set(a) = op else {
            return if matches!(op, Op::Test) {
                ok()
            } else {
                Step::Fail(Final::Cms(302))
            };
        };
        let Some(index) = a.trim().parse::<usize>().ok() else {
            return Step::Fail(Final::Cms(321));
        };
        let mem = self.set.mems[0];
        if !self.storage.valid_index(mem, index) {
            return Step::Fail(Final::Cms(321));
        }
        let text_mode = self.set.cmgf == 1;
        let Some(slot) = self.storage.get_mut(mem, index) else {
            return if self.cfg.profile.empty_read_is_ok() {
                ok()
            } else {
                Step::Fail(Final::Cms(321))
            };
        };
        let stat = slot.stat;
        if slot.stat == 0 {
            slot.stat = 1;
        }
        let slot = slot.clone();
        let lines = if text_mode {
            let mut header = format!("+CMGR: \"{}\",", stat_text(stat));
            let body = match &slot.text {
                TextView::Deliver { from, scts, text } => {
                    header.push_str(&format!("\"{}\",\"\",\"{scts}\"", self.encode_cscs(from)));
                    if self.set.csdh {
                        header.push_str(&format!(
                            ",{},0,0,0,\"{}\",{},{}",
                            toa(from),
                            self.csca.0,
                            self.csca.1,
                            text.chars().count()
                        ));
                    }
                    self.encode_cscs(text)
                }
                TextView::Submit { to, text } => {
                    header.push_str(&format!("\"{}\",\"\"", self.encode_cscs(to)));
                    self.encode_cscs(text)
                }
                TextView::StatusReport {
                    reference,
                    recipient,
                    scts,
                    discharge,
                    status,
                } => {
                    header = format!(
                        "+CMGR: \"{}\",6,{reference},\"{recipient}\",{},\"{scts}\",\"{discharge}\",{status}",
                        stat_text(stat),
                        toa(recipient)
                    );
                    return Step::Done(vec![vec![header]]);
                }
            };
            vec![header, body]
        } else {
            vec![
                format!("+CMGR: {stat},,{}", slot.tpdu_len),
                slot.pdu.clone(),
            ]
        };
        Step::Done(vec![lines])
    }

    // Long on purpose: `+CMGL` in its test, text-mode and PDU-mode forms (TS 27.005 §3.4.2), side by side.
    pub(super) fn cmgl(&mut self, op: &Op) -> Step {
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let text_mode = self.set.cmgf == 1;
        let filter: Option<u8> = match op {
            Op::Test => {
                let list = if text_mode {
                    "+CMGL: (\"REC UNREAD\",\"REC READ\",\"STO UNSENT\",\"STO SENT\",\"ALL\")"
                } else {
                    "+CMGL: (0-4)"
                };
                return Step::Done(vec![vec![list.into()]]);
            }
            Op::Read => return Step::Fail(Final::Cms(302)),
            Op::Exec => Some(0),
            Op::Set(a) => {
                let arg = split_args(a).first().cloned().flatten();
                match (text_mode, arg) {
                    (false, Some(Arg::Raw(n))) => match n.parse::<u8>() {
                        Ok(4) => None,
                        Ok(s) if s <= 3 => Some(s),
                        _ => return Step::Fail(Final::Cms(302)),
                    },
                    (true, Some(Arg::Str(s))) => match s.as_str() {
                        "ALL" => None,
                        other => match (0..4).find(|i| stat_text(*i) == other) {
                            Some(i) => Some(i),
                            None => return Step::Fail(Final::Cms(302)),
                        },
                    },
                    _ => return Step::Fail(Final::Cms(302)),
                }
            }
        };
        let mem = self.set.mems[0];
        let mut records = Vec::new();
        let ucs2 = self.set.cscs == "UCS2";
        for (index, slot) in self.storage.list_mut(mem) {
            if filter.is_some_and(|f| f != slot.stat) {
                continue;
            }
            let stat = slot.stat;
            if slot.stat == 0 {
                slot.stat = 1;
            }
            if text_mode {
                match &slot.text {
                    TextView::Deliver { from, scts, text } => {
                        let from = if self.set.cscs == "UCS2" {
                            sms::string_to_ucs2_hex(from)
                        } else {
                            from.clone()
                        };
                        let text = if self.set.cscs == "UCS2" {
                            sms::string_to_ucs2_hex(text)
                        } else {
                            text.clone()
                        };
                        records.push(vec![
                            format!(
                                "+CMGL: {index},\"{}\",\"{from}\",\"\",\"{scts}\"",
                                stat_text(stat)
                            ),
                            text,
                        ]);
                    }
                    TextView::Submit { to, text } => {
                        let enc = |s: &str| {
                            if ucs2 {
                                sms::string_to_ucs2_hex(s)
                            } else {
                                s.to_string()
                            }
                        };
                        records.push(vec![
                            format!(
                                "+CMGL: {index},\"{}\",\"{}\",\"\",",
                                stat_text(stat),
                                enc(to)
                            ),
                            enc(text),
                        ]);
                    }
                    TextView::StatusReport {
                        reference,
                        recipient,
                        scts,
                        discharge,
                        status,
                    } => records.push(vec![format!(
                        "+CMGL: {index},\"{}\",6,{reference},\"{recipient}\",{},\"{scts}\",\"{discharge}\",{status}",
                        stat_text(stat),
                        toa(recipient)
                    )]),
                }
            } else {
                records.push(vec![
                    format!("+CMGL: {index},{stat},,{}", slot.tpdu_len),
                    slot.pdu.clone(),
                ]);
            }
        }
        // All entries form one information response: no blank line between them.
        Step::List(records)
    }

    pub(super) fn cmgd(&mut self, op: &Op) -> Step {
        if let Err(f) = self.sim_check_cms() {
            return Step::Fail(f);
        }
        let Op::Set(a) = op else {
            return if matches!(op, Op::Test) {
                Step::Done(vec![vec!["+CMGD: (1-30),(0-4)".into()]])
            } else {
                Step::Fail(Final::Cms(302))
            };
        };
        let args = split_args(a);
        let index = args
            .first()
            .cloned()
            .flatten()
            .and_then(|a| a.number())
            .map(|n| n as usize);
        let flag = args
            .get(1)
            .cloned()
            .flatten()
            .and_then(|a| a.number())
            .unwrap_or(0);
        let mem = self.set.mems[0];
        if flag == 0 {
            let Some(index) = index else {
                return Step::Fail(Final::Cms(302));
            };
            if !self.storage.valid_index(mem, index) {
                return Step::Fail(Final::Cms(321));
            }
            self.storage.remove(mem, index);
            return ok();
        }
        let keep: fn(u8, u32) -> bool = |stat, flag| match flag {
            1 => stat != 1,
            2 => !matches!(stat, 1 | 3),
            3 => !matches!(stat, 1..=3),
            _ => false,
        };
        if flag > 4 {
            return Step::Fail(Final::Cms(302));
        }
        self.storage.retain(mem, |slot| keep(slot.stat, flag));
        ok()
    }

    pub(super) fn status_report(
        &mut self,
        reference: u8,
        to: &str,
        submitted: DateTime<Utc>,
        status: u8,
    ) -> Vec<Effect> {
        let mut fx = Vec::new();
        let ds = self.set.cnmi[3];
        let routed = match ds {
            1 => "cds",
            2 => "cdsi",
            _ => "discarded",
        };
        fx.push(Effect::Log(NetworkEntry::StatusReport {
            at: self.now,
            message_reference: reference,
            to: to.to_string(),
            status,
            routed: routed.to_string(),
        }));
        if ds == 0 || self.sim != SimState::Ready {
            return fx;
        }
        let sc_time = local(submitted);
        let discharge = local(self.now);
        let encoded = match sms::encode_status_report(reference, to, sc_time, discharge, status) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "simulator cannot encode a status report");
                return fx;
            }
        };
        let view = TextView::StatusReport {
            reference,
            recipient: to.to_string(),
            scts: scts(submitted),
            discharge: scts(self.now),
            status,
        };
        if ds == 1 {
            let lines = if self.set.cmgf == 0 {
                vec![
                    format!("+CDS: {}", encoded.tpdu_len),
                    encoded.hex_with_smsc.clone(),
                ]
            } else {
                vec![format!(
                    "+CDS: 6,{reference},\"{to}\",{},\"{}\",\"{}\",{status}",
                    toa(to),
                    scts(submitted),
                    scts(self.now)
                )]
            };
            if let Some(e) = self.sms_urc(&lines, UrcPlacement::Now) {
                fx.push(e);
            }
        } else {
            let mem = self.set.mems[2];
            let slot = Slot {
                stat: 0,
                pdu: encoded.hex_with_smsc.clone(),
                tpdu_len: encoded.tpdu_len,
                text: view,
            };
            if let Some(index) = self.storage.insert(mem, slot) {
                let line = format!("+CDSI: \"{}\",{index}", mem.as_str());
                if let Some(e) = self.sms_urc(&[line], UrcPlacement::Now) {
                    fx.push(e);
                }
            }
        }
        fx
    }

    /// `count` status reports for messages "sent" to `to`, written as one burst (references
    /// count up from `first_reference`, wrapping). For testing that the DTE survives a flood of
    /// delivery reports: one write, so none is lost in the simulator's own output queue.
    pub fn status_report_burst(
        &mut self,
        count: u32,
        first_reference: u8,
        to: &str,
        now: DateTime<Utc>,
    ) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        let mut burst = Vec::new();
        let mut reference = first_reference;
        for _ in 0..count.min(MAX_REPORT_BURST) {
            for e in self.status_report(reference, to, now, 0) {
                match e {
                    Effect::Write { chunks, .. } => {
                        chunks.into_iter().for_each(|c| burst.extend(c))
                    }
                    other => fx.push(other),
                }
            }
            reference = reference.wrapping_add(1);
        }
        if !burst.is_empty() {
            fx.push(Effect::Write {
                delay: Duration::ZERO,
                chunks: vec![burst],
            });
        }
        self.silence_filter(fx)
    }

    /// An SMS arrives from `from`. Held by the network while the modem cannot receive.
    pub fn deliver_sms(
        &mut self,
        from: &str,
        text: &str,
        opts: DeliverOptions,
        now: DateTime<Utc>,
    ) -> Result<Vec<Effect>, SimError> {
        self.now = now;
        if !self.registered() {
            // Validate now so the caller hears about unencodable text at once.
            sms::encode_deliver(from, text, local(now), None, 0, &opts)?;
            self.network_queue
                .push_back((from.to_string(), text.to_string(), opts));
            return Ok(Vec::new());
        }
        let fx = self.deliver_now(from, text, opts)?;
        Ok(self.silence_filter(fx))
    }

    pub(super) fn deliver_now(
        &mut self,
        from: &str,
        text: &str,
        opts: DeliverOptions,
    ) -> Result<Vec<Effect>, SimError> {
        let smsc = opts.smsc.clone().unwrap_or_else(|| self.csca.0.clone());
        self.concat_ref = self.concat_ref.wrapping_add(1);
        let parts = sms::encode_deliver(
            from,
            text,
            local(self.now),
            Some(&smsc),
            self.concat_ref,
            &opts,
        )?;
        let mut fx = Vec::new();
        let mut routed = Vec::new();
        // Parts travel separately through the network, so they arrive (and are announced) a
        // moment apart; with zero delays all at once.
        let spacing = self.cfg.command_delay * 2;
        let count = parts.len();
        for (k, part) in parts.into_iter().enumerate() {
            if k > 0 && !spacing.is_zero() {
                fx.push(Effect::Schedule {
                    after: spacing * k as u32,
                    timer: Timer::DeliverPart {
                        from: from.to_string(),
                        part,
                        placement: opts.placement,
                    },
                });
                routed.push("later".to_string());
                continue;
            }
            let (r, e) = self.route_part(from, &part, opts.placement);
            routed.push(r);
            fx.extend(e);
        }
        fx.push(Effect::Log(NetworkEntry::SmsIn {
            at: self.now,
            from: from.to_string(),
            text: text.to_string(),
            parts: count,
            routed: routed.join(" "),
        }));
        Ok(fx)
    }

    /// Stores one incoming part (with `+CMTI`) or routes it as `+CMT`, per `AT+CNMI`. Returns
    /// where it went, for the log.
    pub(super) fn route_part(
        &mut self,
        from: &str,
        part: &DeliverPart,
        placement: UrcPlacement,
    ) -> (String, Option<Effect>) {
        let mt = self.set.cnmi[1];
        let mem = self.set.mems[2];
        if mt == 2 {
            let lines = if self.set.cmgf == 0 {
                vec![
                    format!("+CMT: ,{}", part.tpdu_len),
                    part.hex_with_smsc.clone(),
                ]
            } else {
                vec![
                    format!(
                        "+CMT: \"{}\",,\"{}\"",
                        self.encode_cscs(from),
                        scts(self.now)
                    ),
                    self.encode_cscs(&part.text),
                ]
            };
            return ("cmt".to_string(), self.sms_urc(&lines, placement));
        }
        let slot = Slot {
            stat: 0,
            pdu: part.hex_with_smsc.clone(),
            tpdu_len: part.tpdu_len,
            text: TextView::Deliver {
                from: from.to_string(),
                scts: scts(self.now),
                text: part.text.clone(),
            },
        };
        match self.storage.insert(mem, slot) {
            Some(index) => {
                let urc = if mt != 0 {
                    let line = format!("+CMTI: \"{}\",{index}", mem.as_str());
                    self.sms_urc(&[line], placement)
                } else {
                    None
                };
                (format!("{}:{index}", mem.as_str()), urc)
            }
            None => ("rejected: memory full".to_string(), None),
        }
    }
}
