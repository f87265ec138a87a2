//! SMS in the driver: configuration, sending (PDU mode, text mode fallback), receiving from
//! storage and directly, status reports, multipart reassembly.
//!
//! A stored message is deleted from the modem only after its event was accepted (into the
//! channel or the driver's backlog), or it proved undecodable, and parts of an unfinished
//! multipart message stay stored until the whole message is out; a restart then finds them
//! again with `AT+CMGL`. A message whose event the full backlog refused, or whose read failed,
//! stays stored too and is listed again by the next health poll after the backlog drained; every
//! few polls storage is listed anyway, for a message whose `+CMTI` was lost on the line.

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone, Utc};
use tracing::{debug, error, info, warn};

use super::{Driver, ModemError, ModemEvent, SmsReceipt};
use crate::modem::at::response::{body_of, parse_cmgl_index, parse_cmgs, split_fields, unquote};
use crate::modem::at::{CallerNumber, NumberType};
use crate::modem::driver::{mask_number, HealthState};
use crate::modem::engine::{Command, EngineError};
use crate::modem::pdu::{
    decode, decode_with_tpdu_len, encode_submit, AddressKind, Deliver, Direction, Pdu,
    StatusReport, SubmitOptions,
};
use crate::modem::port::PortOpener;

/// Whether a response line is a PDU: hex digits only, an even number of them.
fn is_pdu_hex(line: &str) -> bool {
    let l = line.trim();
    !l.is_empty() && l.len() % 2 == 0 && l.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Longest page we split into parts; beyond it something upstream is wrong.
const MAX_PARTS: usize = 10;
/// Validity asked of the service centre: a page a day old is no use.
const VALIDITY_MINUTES: u32 = 24 * 60;

impl<O: PortOpener> Driver<O> {
    /// Sets SMS mode, indications, storage; then processes what is stored.
    pub(super) async fn configure_sms(&mut self) -> Result<(), ModemError> {
        let t = self.s.command_timeout;
        let mode = if self.s.text_mode {
            "AT+CMGF=1"
        } else {
            "AT+CMGF=0"
        };
        if let Err(e) = self.exec(Command::new(mode, t)).await {
            if matches!(e, ModemError::Command(ref c) if !c.is_port_lost() && !c.is_timeout()) {
                // Paging needs this mode: say which modem refused it and what it answered.
                let answer = match &e {
                    ModemError::Command(c) => super::answer_of(c),
                    other => other.to_string(),
                };
                self.configure_problem = Some(format!(
                    "{} answered {answer} to {mode}: cannot set SMS {} mode",
                    self.modem_name(),
                    if self.s.text_mode { "text" } else { "PDU" },
                ));
            }
            return Err(e);
        }
        if self.s.text_mode {
            self.optional_setting("AT+CSCS=\"GSM\"", "GSM character set")
                .await?;
            // First octet 17 (SUBMIT, relative validity) or 49 (also TP-SRR), one day.
            let fo = if self.s.delivery_reports { 49 } else { 17 };
            self.optional_setting(&format!("AT+CSMP={fo},167,0,0"), "text-mode parameters")
                .await?;
        }
        if let Some(smsc) = self.s.smsc.clone() {
            let kind = if smsc.starts_with('+') { 145 } else { 129 };
            self.optional_setting(&format!("AT+CSCA=\"{smsc}\",{kind}"), "SMS centre")
                .await?;
        }
        if self
            .optional_setting("AT+CPMS=\"SM\",\"SM\",\"SM\"", "SIM message storage")
            .await?
            .is_some()
        {
            self.storage = "SM".into();
        }
        // mt=1: +CMTI with the storage index (a message survives a daemon crash);
        // ds=1: status reports as +CDS (stored ones arrive as +CDSI on some firmware).
        let ds = u8::from(self.s.delivery_reports);
        // Some modems refuse mode 2 with a given ds; 1 buffers nothing but still indicates. One
        // that routes no status reports still indicates new messages with ds 0.
        let mut forms = vec![(2, ds), (1, ds)];
        if ds != 0 {
            forms.extend([(2, 0), (1, 0)]);
        }
        let mut indicated = None;
        for (mode, with_ds) in forms {
            let cnmi = format!("AT+CNMI={mode},1,0,{with_ds},0");
            if self.exec_opt(&cnmi).await?.is_some() {
                indicated = Some(with_ds);
                break;
            }
        }
        self.optional_setting("AT+CLIP=1", "caller ID").await?;
        if let Some(cmd) = self.profile.dtmf_enable_command() {
            self.optional_setting(cmd, "DTMF detection").await?;
        }
        self.configure_problem = None;
        self.configured = true;
        match indicated {
            Some(with_ds) => {
                if with_ds != ds && self.indications_problem.is_none() {
                    warn!(modem = %self.modem_name(), "modem refused status reports (AT+CNMI ds=1): delivery reports are off; set modem.delivery_reports = false to say so");
                }
                self.expect_cnmi = Some((1, with_ds));
                self.indications_problem = None;
            }
            None => {
                // Refused right after boot (`+CMS ERROR: 302`/`314` before the SIM's message
                // store is ready) or for good. Each poll tries again and, meanwhile, lists
                // storage (below), so acks by SMS are read within a poll; Degraded, since they
                // are not read at once and delivery reports are not seen.
                self.expect_cnmi = None;
                self.indications_problem = Some(format!(
                    "{} refused new-message indications (AT+CNMI): SMS acks are read by polling, delivery reports are not seen; retrying",
                    self.modem_name()
                ));
            }
        }
        self.process_stored().await
    }

    /// Refuses at once when pages cannot go out (port down, SIM problem, not registered), so
    /// the caller falls back to email without waiting for a timeout.
    pub(super) fn ensure_can_send(&self) -> Result<(), ModemError> {
        let h = self.health.borrow();
        if self.engine.is_none() || h.state == HealthState::Down {
            return Err(ModemError::Unavailable {
                reason: h.reason.clone(),
            });
        }
        Ok(())
    }

    pub(super) async fn send_sms(
        &mut self,
        to: &str,
        text: &str,
    ) -> Result<SmsReceipt, ModemError> {
        self.ensure_can_send()?;
        if self.s.text_mode {
            return self.send_text_mode(to, text).await;
        }
        let reference = self.concat_ref;
        self.concat_ref = self.concat_ref.wrapping_add(1);
        let opts = SubmitOptions {
            request_status_report: self.s.delivery_reports,
            concat_reference: reference,
            max_parts: Some(MAX_PARTS),
            validity_minutes: Some(VALIDITY_MINUTES),
            smsc: None,
        };
        let parts = encode_submit(to, text, &opts)?;
        let total = parts.len();
        let mut references = Vec::with_capacity(total);
        for (i, part) in parts.into_iter().enumerate() {
            let cmd = Command::submit(
                format!("AT+CMGS={}", part.tpdu_len),
                part.hex,
                self.s.sms_timeout,
            );
            let mr = self.submit_part(cmd, i + 1, total).await?;
            references.push(mr);
        }
        info!(to = %mask_number(to), parts = total, "sms sent");
        Ok(SmsReceipt {
            references,
            parts: total,
        })
    }

    /// Submits one part, retrying retryable modem errors (e.g. `+CMS ERROR: 500`).
    async fn submit_part(
        &mut self,
        cmd: Command,
        part: usize,
        total: usize,
    ) -> Result<u8, ModemError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.exec(cmd.clone()).await {
                Ok(r) => {
                    return r.line("+CMGS:").and_then(parse_cmgs).ok_or_else(|| {
                        ModemError::Protocol {
                            command: "AT+CMGS".into(),
                            detail: format!("no message reference in {:?}", r.lines),
                        }
                    })
                }
                Err(ModemError::Command(e)) => {
                    // A bare ERROR names no cause: the page is retried later by its sender, with
                    // a backoff, but the part is not resubmitted blindly at once.
                    let again = e.is_retryable()
                        && !matches!(e, EngineError::Error { .. })
                        && !e.is_port_lost()
                        && !e.is_timeout()
                        && attempt < self.s.part_attempts
                        && self.engine.is_some();
                    if !again {
                        return Err(ModemError::Part {
                            part,
                            total,
                            source: e,
                        });
                    }
                    warn!(error = %e, part, total, attempt, "sms part failed, retrying");
                    tokio::time::sleep(self.s.part_retry_delay.saturating_mul(attempt)).await;
                }
                Err(other) => return Err(other),
            }
        }
    }

    /// Text mode: one GSM-text message, no parts, no UCS-2.
    async fn send_text_mode(&mut self, to: &str, text: &str) -> Result<SmsReceipt, ModemError> {
        if !to.chars().all(|c| c.is_ascii_digit() || c == '+') || to.is_empty() {
            return Err(ModemError::InvalidNumber { number: to.into() });
        }
        let kind = if to.starts_with('+') { 145 } else { 129 };
        let clean: String = text
            .chars()
            .map(|c| {
                if c == '\u{1a}' || c == '\u{1b}' {
                    ' '
                } else {
                    c
                }
            })
            .collect();
        let cmd = Command::submit(
            format!("AT+CMGS=\"{to}\",{kind}"),
            clean,
            self.s.sms_timeout,
        );
        let mr = self.submit_part(cmd, 1, 1).await?;
        info!(to = %mask_number(to), parts = 1, "sms sent (text mode)");
        Ok(SmsReceipt {
            references: vec![mr],
            parts: 1,
        })
    }

    /// Reads stored messages left from before (`AT+CMGL=4`, all, PDU mode) and processes them.
    pub(super) async fn process_stored(&mut self) -> Result<(), ModemError> {
        if !self.s.receive_messages {
            return Ok(());
        }
        let list = if self.s.text_mode {
            Command::new("AT+CMGL=\"ALL\"", self.s.command_timeout).with_text_bodies()
        } else {
            Command::new("AT+CMGL=4", self.s.command_timeout)
        };
        let Some(r) = self.exec_opt_cmd(list).await? else {
            return Ok(());
        };
        let mut entries = Vec::new();
        let mut lines = r.lines.into_iter().peekable();
        while let Some(l) = lines.next() {
            let Some(index) = parse_cmgl_index(&l) else {
                continue;
            };
            // Everything up to the next header belongs to this entry; in PDU mode the body is
            // its hex line, whatever vendor line came in between.
            let mut own = Vec::new();
            while let Some(next) = lines.next_if(|n| !n.starts_with("+CMGL:")) {
                own.push(next);
            }
            let body = if self.s.text_mode {
                own.into_iter().next()
            } else {
                own.into_iter().find(|b| is_pdu_hex(b))
            };
            let Some(body) = body else {
                warn!(
                    index,
                    "a stored message was listed without its body; left on the SIM"
                );
                continue;
            };
            entries.push((index, l, body));
        }
        entries.retain(|(index, ..)| !self.undeleted.contains(index));
        if !entries.is_empty() {
            info!(count = entries.len(), "processing stored messages");
        }
        for (index, header, body) in entries {
            if self.s.text_mode {
                self.on_text_message(Some(index), &header, &body).await?;
            } else {
                let len = split_fields(body_of(&header, "+CMGL:").unwrap_or(""))
                    .last()
                    .and_then(|f| f.parse().ok());
                self.process_pdu(Some(index), &body, len).await?;
            }
        }
        Ok(())
    }

    /// `+CMTI`/`+CDSI`: read the message at `index`, process it, delete it.
    pub(super) async fn read_stored(
        &mut self,
        storage: &str,
        index: u32,
    ) -> Result<(), ModemError> {
        if !self.s.receive_messages {
            return Ok(());
        }
        // A new message announced in a slot means what stayed there is gone.
        self.undeleted.remove(&index);
        let switched = storage != self.storage;
        if switched {
            self.exec_opt(&format!("AT+CPMS=\"{storage}\"")).await?;
        }
        let res = self.read_one(index).await;
        if switched {
            let back = format!("AT+CPMS=\"{}\"", self.storage);
            self.exec_opt(&back).await?;
        }
        res
    }

    async fn read_one(&mut self, index: u32) -> Result<(), ModemError> {
        let mut cmd = Command::new(format!("AT+CMGR={index}"), self.s.command_timeout);
        if self.s.text_mode {
            cmd = cmd.with_text_bodies();
        }
        let r = match self.exec(cmd).await {
            Ok(r) => r,
            Err(ModemError::Command(
                e @ (EngineError::Cms { .. } | EngineError::Cme { .. } | EngineError::Error { .. }),
            )) => {
                // SIM busy (CMS 314) and the like: the message stays stored, and storage is
                // listed again at the next health poll instead of waiting for a restart.
                warn!(index, error = %e, "stored message could not be read; reading storage again at the next poll");
                self.reread_stored = true;
                return Ok(());
            }
            Err(e) => {
                self.reread_stored = true;
                return Err(e);
            }
        };
        let Some(pos) = r.lines.iter().position(|l| l.starts_with("+CMGR:")) else {
            debug!(index, "empty storage slot");
            return Ok(());
        };
        let header = r.lines[pos].clone();
        let after = &r.lines[pos + 1..];
        let body = if self.s.text_mode {
            after.first().cloned()
        } else {
            // The PDU line, past any vendor line the modem slipped in (`*PSUTTZ`, `DST: 1`):
            // taking such a line as the PDU would fail to decode and delete the message.
            after.iter().find(|l| is_pdu_hex(l)).cloned()
        };
        let Some(body) = body else {
            warn!(
                index,
                "stored message read without its body; reading storage again at the next poll"
            );
            self.reread_stored = true;
            return Ok(());
        };
        if self.s.text_mode {
            return self.on_text_message(Some(index), &header, &body).await;
        }
        let len = split_fields(body_of(&header, "+CMGR:").unwrap_or(""))
            .last()
            .and_then(|f| f.parse().ok());
        self.process_pdu(Some(index), &body, len).await
    }

    /// `+CMT: [<alpha>],<length>` + PDU: a message not stored.
    pub(super) async fn on_direct_message(
        &mut self,
        header: &str,
        body: &str,
    ) -> Result<(), ModemError> {
        if self.s.text_mode {
            return self
                .on_text_message(None, &format!("+CMT: {header}"), body)
                .await;
        }
        let len = split_fields(header).last().and_then(|f| f.parse().ok());
        self.process_pdu(None, body, len).await
    }

    /// `+CDS: <length>` + PDU: a status report not stored.
    pub(super) async fn on_direct_report(
        &mut self,
        header: &str,
        body: &str,
    ) -> Result<(), ModemError> {
        let len = split_fields(header).last().and_then(|f| f.parse().ok());
        self.process_pdu(None, body, len).await
    }

    /// `+CDS: <fo>,<mr>,[<ra>],[<tora>],<scts>,<dt>,<st>`: a status report in text mode. One
    /// that cannot be read is logged and dropped: it is not stored anywhere to delete, and the
    /// page it reports on stays `sent`.
    pub(super) fn on_text_report(&mut self, header: &str) -> Result<(), ModemError> {
        let f = split_fields(header);
        let number = |i: usize| f.get(i).and_then(|v| v.trim().parse::<u8>().ok());
        let (Some(reference), Some(status)) = (number(1), f.len().checked_sub(1).and_then(number))
        else {
            warn!(
                report = header,
                "unreadable text-mode status report dropped"
            );
            return Ok(());
        };
        let recipient = f.get(2).map(|r| unquote(r)).unwrap_or_default();
        let kind = number(3).map_or(NumberType::Unknown, NumberType::from_toa);
        let recipient = CallerNumber::new(recipient, kind)
            .map(CallerNumber::into_string)
            .unwrap_or_default();
        let outcome = crate::modem::pdu::DeliveryOutcome::from_status(status);
        info!(
            reference,
            recipient = %mask_number(&recipient),
            outcome = ?outcome,
            "delivery report"
        );
        self.hand_over(
            ModemEvent::DeliveryReport {
                reference,
                recipient,
                delivered: outcome == crate::modem::pdu::DeliveryOutcome::Delivered,
                outcome,
                status,
            },
            None,
        )
    }

    async fn process_pdu(
        &mut self,
        index: Option<u32>,
        hex: &str,
        tpdu_len: Option<usize>,
    ) -> Result<(), ModemError> {
        let decoded = match tpdu_len {
            Some(n) => decode_with_tpdu_len(hex, Direction::MobileTerminated, n)
                .or_else(|_| decode(hex, Direction::MobileTerminated, true)),
            None => decode(hex, Direction::MobileTerminated, true),
        };
        match decoded {
            Ok(Pdu::Deliver(d)) => self.on_deliver(d, index).await,
            Ok(Pdu::StatusReport(sr)) => {
                self.on_report(sr, index)?;
                self.delete(index).await
            }
            Ok(Pdu::Submit(_)) => {
                debug!(index = ?index, "stored outgoing message left alone");
                Ok(())
            }
            Err(e) => {
                error!(index = ?index, error = %e, "undecodable message deleted");
                debug!(pdu = hex, "undecodable message");
                self.delete(index).await
            }
        }
    }

    /// Hands the report over; `index` is where it is stored on the SIM, if it is.
    fn on_report(&mut self, sr: StatusReport, index: Option<u32>) -> Result<(), ModemError> {
        let outcome = sr.outcome();
        info!(
            reference = sr.message_reference,
            recipient = %mask_number(&sr.recipient.number),
            outcome = ?outcome,
            "delivery report"
        );
        self.hand_over(
            ModemEvent::DeliveryReport {
                reference: sr.message_reference,
                recipient: sr.recipient.number,
                delivered: outcome == crate::modem::pdu::DeliveryOutcome::Delivered,
                outcome,
                status: sr.status,
            },
            index,
        )
    }

    async fn on_deliver(&mut self, d: Deliver, index: Option<u32>) -> Result<(), ModemError> {
        let now = self.clock.now();
        let Some(c) = d.concat else {
            self.hand_over(received(d, now), index)?;
            return self.delete(index).await;
        };
        let key = (d.sender.number.clone(), c.reference, c.total);
        if let Some(i) = index {
            let entry = self
                .stored_parts
                .entry(key.clone())
                .or_insert((now, Vec::new()));
            if !entry.1.contains(&i) {
                entry.1.push(i);
            }
        }
        if let Some(full) = self.reassembler.insert(d, now) {
            let stored = self
                .stored_parts
                .get(&key)
                .and_then(|(_, indexes)| indexes.first().copied());
            if let Err(e) = self.hand_over(received(full, now), stored) {
                // Refused: the parts stay stored (forgotten here, so expiry does not delete
                // them) and are joined again when storage is listed next.
                self.stored_parts.remove(&key);
                return Err(e);
            }
            if let Some((_, indexes)) = self.stored_parts.remove(&key) {
                for i in indexes {
                    self.delete(Some(i)).await?;
                }
            }
        }
        Ok(())
    }

    /// Hands out multipart messages whose missing parts never came, joined as far as they got.
    pub(super) async fn expire_partials(&mut self) {
        let now = self.clock.now();
        for inc in self.reassembler.expire(now) {
            warn!(missing = ?inc.missing, total = inc.total, "incomplete multipart message delivered");
            if self.emit(received(inc.message, self.clock.now())).is_err() {
                return;
            }
        }
        // Stored parts older than the reassembly window belong to what just expired.
        let cutoff = crate::clock::sub(now, std::time::Duration::from_secs(10 * 60));
        let stale: Vec<_> = self
            .stored_parts
            .iter()
            .filter(|(_, (seen, _))| *seen <= cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            if let Some((_, indexes)) = self.stored_parts.remove(&k) {
                for i in indexes {
                    if self.delete(Some(i)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn delete(&mut self, index: Option<u32>) -> Result<(), ModemError> {
        if let Some(i) = index {
            if self.exec_opt(&format!("AT+CMGD={i}")).await?.is_none() {
                // Handled but still stored: listing storage again must not hand it over (and
                // answer its sender) again, at every sweep.
                warn!(index = i, "modem refused to delete a handled message; it stays on the SIM and is not read again");
                self.undeleted.insert(i);
            }
        }
        Ok(())
    }

    /// Text mode `+CMGR:`/`+CMGL:`/`+CMT:` header and body.
    async fn on_text_message(
        &mut self,
        index: Option<u32>,
        header: &str,
        body: &str,
    ) -> Result<(), ModemError> {
        let (_, rest) = header.split_once(':').unwrap_or(("", header));
        let f = split_fields(rest.trim());
        // +CMGL: idx,stat,oa,alpha,scts | +CMGR: stat,oa,alpha,scts | +CMT: oa,alpha,scts
        let skip = match header {
            h if h.starts_with("+CMGL:") => 2,
            h if h.starts_with("+CMGR:") => 1,
            _ => 0,
        };
        let from = f
            .get(skip)
            .map(|s| unquote(s).to_string())
            .unwrap_or_default();
        let ts = f
            .get(skip + 2)
            .and_then(|d| {
                f.get(skip + 3)
                    .map(|t| format!("{},{}", unquote(d), unquote(t)))
            })
            .and_then(|s| parse_text_timestamp(&s))
            .or_else(|| {
                f.get(skip + 2)
                    .and_then(|s| parse_text_timestamp(unquote(s)))
            });
        // As in PDU mode: a stamp that cannot be read is replaced by the time of reading, the
        // message (an acknowledgement, perhaps) is not thrown away for it.
        let timestamp = ts.unwrap_or_else(|| {
            warn!(index = ?index, "text-mode message without a readable timestamp: stamped now");
            self.clock.now().fixed_offset()
        });
        let alphanumeric = !from.chars().all(|c| c.is_ascii_digit() || c == '+');
        self.hand_over(
            ModemEvent::SmsReceived {
                from,
                text: body.to_string(),
                timestamp,
                alphanumeric,
            },
            index,
        )?;
        self.delete(index).await
    }
}

/// A delivered message as the acknowledgement code reads it: the sender's number in the form
/// [`CallerNumber`] gives a caller's, by its type of number, so a national number the network
/// sends without its trunk `0` (`15112345678`, TON 2) is completed with `daemon.country_code`
/// instead of being read as an international one (`+1 511...`).
///
/// A message whose service-centre stamp was not a valid time carries `now` (when it was read)
/// instead: an acknowledgement must not be lost to a broken SMSC's clock.
fn received(d: Deliver, now: DateTime<Utc>) -> ModemEvent {
    let kind = match d.sender.kind {
        AddressKind::International => NumberType::International,
        AddressKind::National => NumberType::National,
        AddressKind::Alphanumeric | AddressKind::Unknown => NumberType::Unknown,
    };
    let alphanumeric = d.sender.kind == AddressKind::Alphanumeric;
    let from = match CallerNumber::new(&d.sender.number, kind) {
        Some(n) if !alphanumeric => n.into_string(),
        _ => d.sender.number,
    };
    ModemEvent::SmsReceived {
        alphanumeric,
        from,
        text: d.text,
        timestamp: d.timestamp.unwrap_or_else(|| now.fixed_offset()),
    }
}

/// `yy/MM/dd,hh:mm:ss±zz` (zone in quarter hours), as text mode shows timestamps.
fn parse_text_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    let (date, time) = s.split_once(',')?;
    let mut d = date.split('/').map(|p| p.parse::<u32>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let sign_pos = time.rfind(['+', '-'])?;
    let (clock, zone) = time.split_at(sign_pos);
    let quarters: i32 = zone.parse().ok()?;
    let mut c = clock.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi, se) = (c.next()??, c.next()??, c.next()??);
    // Checked: the line comes from the modem, and a garbled one must not overflow.
    let offset = FixedOffset::east_opt(quarters.checked_mul(15 * 60)?)?;
    let year = i32::try_from(y).ok()?.checked_add(2000)?;
    let naive = NaiveDate::from_ymd_opt(year, mo, da)?.and_hms_opt(h, mi, se)?;
    offset.from_local_datetime(&naive).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_senders_number_is_read_by_its_type_of_number() {
        let from = |number: &str, kind: AddressKind| {
            let d = Deliver {
                smsc: None,
                sender: crate::modem::pdu::Address {
                    number: number.into(),
                    kind,
                },
                timestamp: parse_text_timestamp("26/11/22,10:00:00+04"),
                encoding: crate::modem::pdu::Encoding::Gsm7,
                text: "1a".into(),
                concat: None,
                status_report_indication: false,
            };
            match received(d, crate::clock::system_now()) {
                ModemEvent::SmsReceived { from, .. } => from,
                other => panic!("{other:?}"),
            }
        };
        let e164 = |n: &str| crate::config::PhoneNumber::normalize(n, "49");
        let want = crate::config::PhoneNumber::parse_e164("+4915112345678");
        // International (TON 1), national without its trunk prefix (TON 2), national with it
        // under "unknown" (TON 0): the same person.
        for (number, kind) in [
            ("+4915112345678", AddressKind::International),
            ("15112345678", AddressKind::National),
            ("015112345678", AddressKind::Unknown),
        ] {
            assert_eq!(e164(&from(number, kind)), want, "{number} {kind:?}");
        }
        assert_eq!(from("sipgate", AddressKind::Alphanumeric), "sipgate");
    }

    #[test]
    fn text_mode_timestamps_carry_their_zone() {
        let t = parse_text_timestamp("26/11/22,10:00:00+04").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-22T10:00:00+01:00");
        let t = parse_text_timestamp("26/03/29,01:30:00-20").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-03-29T01:30:00-05:00");
        assert!(parse_text_timestamp("garbage").is_none());
        // Garbled lines whose offsets overflow unchecked arithmetic: refused, never a panic.
        for bad in [
            "26/11/22,10:00:00+99999999",
            "26/11/22,10:00:00-2147483648",
            "4294967295/11/22,10:00:00+04",
            "2147483647/11/22,10:00:00+04",
        ] {
            assert!(parse_text_timestamp(bad).is_none(), "{bad}");
        }
    }
}
