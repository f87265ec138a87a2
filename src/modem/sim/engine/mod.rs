//! The simulated modem's state machine: bytes in, effects out. No I/O, no clock, no sleeping.
//!
//! [`Engine`] owns everything a module remembers — terminal settings (echo, verbose, CMEE), SIM
//! and registration state, SMS settings and storage, the call, faults — and turns
//! (a) bytes from the DTE, (b) timers it scheduled itself and (c) control requests into
//! [`Effect`]s: bytes to write (after a delay), entries for the network log, timers to arm.
//! The owning task in [`super::task`] performs them. Keeping this pure is what lets the unit tests
//! in `tests.rs` drive whole AT dialogues without a PTY and without waiting.
//!
//! This file holds the state, the byte/line handling, result framing, command dispatch and
//! the timer and fault entry points; the command groups live beside it:
//! [`network`] (SIM, PIN, registration, operator, CFUN), [`messages`] (SMS settings, submit,
//! storage, incoming messages, status reports) and [`calls`] (dial, answer, hang up, CLCC,
//! ringing, DTMF, TTS).

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

mod calls;
mod messages;
mod network;
mod services;
mod ussd;

use super::command::{self, split_args, Command, Op};
use super::profile::{DtmfReport, SimProfile};
use super::sms::{self, Assembler, DeliverPart};
use super::storage::{Mem, Slot, Storage, TextView};
use super::types::{
    CallBehaviour, CallDirection, CallOutcome, DeliverOptions, Fault, NetworkEntry, SimConfig,
    SimError, UrcPlacement,
};

/// Longest command line accepted; longer input is dropped up to the next `<CR>`, as real
/// modules do with their fixed buffers.
const MAX_LINE: usize = 1024;
/// Longest PDU or text accepted after the `> ` prompt.
const MAX_PROMPT_INPUT: usize = 4096;
/// PUK accepted by the simulated SIM (real SIMs have their own; documented in docs/modem.md).
pub const SIM_PUK: &str = "12345678";
/// IMEI, IMSI and ICCID of the simulated module and SIM.
const IMEI: &str = "866758041234567";
const IMSI: &str = "262019876543210";
const ICCID: &str = "89490200001234567890";
/// The network operator's name in `+COPS`.
const OPERATOR: &str = "pagerbox net";
const OPERATOR_NUMERIC: &str = "26299";
/// The operator's short name (`+COPS` format 1).
const OPERATOR_SHORT: &str = "PBNET";

/// Commands every profile answers (for `AT+CLAC`; profile-specific ones are added).
const SUPPORTED: &[&str] = &[
    "&C", "&D", "&F", "&K", "&W", "A", "D", "E", "H", "I", "L", "M", "Q", "S0", "V", "X", "Z",
    "+CALM", "+CBC", "+CCLK", "+CCWA", "+CFUN", "+CGATT", "+CGMI", "+CGMM", "+CGMR", "+CGREG",
    "+CGSN", "+CHUP", "+CIMI", "+CLAC", "+CLCC", "+CLIP", "+CLVL", "+CMEE", "+CMGD", "+CMGF",
    "+CMGL", "+CMGR", "+CMGS", "+CMGW", "+CMSS", "+CMUT", "+CNMA", "+CNMI", "+CNUM", "+COLP",
    "+COPS", "+CPAS", "+CPBS", "+CPIN", "+CPMS", "+CRC", "+CREG", "+CRSL", "+CSCA", "+CSCS",
    "+CSDH", "+CSMP", "+CSMS", "+CSQ", "+CUSD", "+CVHU", "+GCAP", "+GMI", "+GMM", "+GMR", "+GSN",
    "+ICF", "+IFC", "+IPR", "+VTD", "+VTS",
];

/// Something the owning task must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write these chunks after `delay` (counted from when the previous write finished). A URC
    /// held for "inside the next response" may be written between the first and second chunk.
    Write {
        delay: Duration,
        chunks: Vec<Vec<u8>>,
    },
    /// Hold this URC and write it inside the next response with at least two chunks.
    HoldUrc(Vec<u8>),
    /// Append to the network log.
    Log(NetworkEntry),
    /// Call [`Engine::timer`] with `timer` after `after`.
    Schedule { after: Duration, timer: Timer },
    /// Close the PTY now and create a new one at the same link after the duration; then call
    /// [`Engine::power_on`].
    Vanish(Duration),
}

/// A timer the engine armed for itself. Each carries the generation it was armed in, so a timer
/// that outlived its call or boot is ignored.
#[derive(Debug, Clone, PartialEq)]
pub enum Timer {
    /// Boot stage `n` of boot generation `gen`.
    Boot { gen: u64, stage: u8 },
    /// Next step of outgoing call `gen`.
    Call { gen: u64, step: CallStep },
    /// Ring again for incoming call `gen`.
    Ring { gen: u64 },
    /// A status report for a submitted message is due.
    StatusReport {
        reference: u8,
        to: String,
        submitted: DateTime<Utc>,
        /// TP-ST: 0 delivered, else why not.
        status: u8,
    },
    /// A TTS utterance finished playing.
    TtsDone { urc: String },
    /// The network's answer to a USSD request: write this `+CUSD` URC.
    Ussd { line: String },
    /// A later part of a multipart incoming message arrives.
    DeliverPart {
        from: String,
        part: DeliverPart,
        placement: UrcPlacement,
    },
}

/// Steps of an outgoing call after `ATD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStep {
    /// The far phone rings.
    Alerting,
    /// The far phone picks up.
    Answer,
    /// The callee is busy.
    Busy,
    /// The callee declines.
    Reject,
    /// The network gives up ringing.
    NoAnswer,
}

/// A final result code of a command line (call progress results such as `BUSY` arrive later,
/// as unsolicited lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// `OK`.
    Ok,
    /// `ERROR`.
    Error,
    /// `+CME ERROR: <n>` (or `ERROR` with CMEE 0).
    Cme(u16),
    /// `+CMS ERROR: <n>`.
    Cms(u16),
    /// `NO CARRIER`.
    NoCarrier,
}

/// The outcome of one command of a line.
enum Step {
    /// Information records (each a group of lines), then go on with the next command.
    Done(Vec<Vec<String>>),
    /// Like `Done`, but the records form one information response (`+CMGL` entries follow each
    /// other without blank lines; a held URC may still go between them).
    List(Vec<Vec<String>>),
    /// Stop the line with this final result (after any records so far).
    Fail(Final),
    /// Show the `> ` prompt and collect input.
    Prompt(PromptKind),
    /// The command writes its own response (with its own delay); ends the line.
    Custom(Vec<Effect>),
}

/// Lines written together as one information record.
struct Record {
    lines: Vec<String>,
    /// Continues the previous record's information response (no leading blank line).
    continues: bool,
}

/// What the text after a `> ` prompt is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PromptKind {
    /// `AT+CMGS=<tpdu length>` in PDU mode.
    PduSubmit { tpdu_len: usize },
    /// `AT+CMGS="<da>"` in text mode.
    TextSubmit { to: String },
    /// `AT+CMGW=<tpdu length>[,<stat>]` in PDU mode.
    PduWrite { tpdu_len: usize, stat: u8 },
    /// `AT+CMGW="<da>"` in text mode.
    TextWrite { to: String },
}

impl PromptKind {
    /// Whether text (not hex) follows the prompt.
    fn is_text(&self) -> bool {
        matches!(
            self,
            PromptKind::TextSubmit { .. } | PromptKind::TextWrite { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SimState {
    Ready,
    PinRequired { attempts_left: u8 },
    PukRequired { attempts_left: u8 },
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Dialing,
    Alerting,
    Active,
    Incoming,
}

impl CallState {
    /// `<stat>` of `+CLCC` (3GPP TS 27.007 §7.18).
    fn clcc(self) -> u8 {
        match self {
            CallState::Active => 0,
            CallState::Dialing => 2,
            CallState::Alerting => 3,
            CallState::Incoming => 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Call {
    gen: u64,
    direction: CallDirection,
    number: String,
    state: CallState,
    started: DateTime<Utc>,
    answered: Option<DateTime<Utc>>,
    spoken: Vec<String>,
    dtmf: String,
}

/// How the next submits fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubmitFailure {
    Error,
    Cms500,
}

/// Settings that `ATZ`/`AT&F` and a reboot restore.
#[derive(Debug, Clone)]
struct Settings {
    echo: bool,
    verbose: bool,
    quiet: bool,
    cmee: u8,
    creg: u8,
    cgreg: u8,
    cereg: u8,
    cmgf: u8,
    cscs: String,
    cnmi: [u8; 5],
    csmp: (u8, u8, u8, u8),
    csdh: bool,
    csms: u8,
    clip: bool,
    colp: bool,
    clcc_urc: bool,
    crc: bool,
    dtmf_detect: bool,
    mems: [Mem; 3],
    /// `+COPS` `<format>`: 0 long name, 1 short name, 2 numeric.
    cops_format: u8,
    /// `+CCWA` `<n>`: whether `+CCWA` URCs are shown.
    ccwa_urc: bool,
    /// The phonebook `+CPBS` selected.
    phonebook: &'static str,
}

impl Settings {
    fn factory() -> Self {
        Self {
            echo: true,
            verbose: true,
            quiet: false,
            cmee: 0,
            creg: 0,
            cgreg: 0,
            cereg: 0,
            cmgf: 0,
            cscs: "IRA".to_string(),
            cnmi: [2, 1, 0, 0, 0],
            csmp: (17, 167, 0, 0),
            csdh: false,
            csms: 0,
            clip: false,
            colp: false,
            clcc_urc: false,
            crc: false,
            dtmf_detect: false,
            mems: [Mem::Sm, Mem::Sm, Mem::Sm],
            cops_format: 0,
            ccwa_urc: false,
            phonebook: "SM",
        }
    }
}

/// The simulated modem.
pub struct Engine {
    cfg: SimConfig,
    now: DateTime<Utc>,
    set: Settings,
    line: Vec<u8>,
    overflow: bool,
    prompt: Option<(PromptKind, Vec<u8>)>,
    sim: SimState,
    cfun: u8,
    booted: bool,
    boot_gen: u64,
    csca: (String, u8),
    storage: Storage,
    next_mr: u8,
    concat_ref: u16,
    assembler: Assembler,
    submit_failures: Option<(SubmitFailure, u32)>,
    /// How many more accepted messages never reach the handset ([`Fault::Undeliverable`]).
    undeliverable: u32,
    /// The boot under way announces nothing ([`Fault::Brownout`]).
    quiet_boot: bool,
    silent: bool,
    reg_fault: Option<bool>,
    sim_pulled: bool,
    call: Option<Call>,
    call_gen: u64,
    behaviour: CallBehaviour,
    /// Messages the network holds while the modem cannot receive (no SIM, no registration).
    network_queue: VecDeque<(String, String, DeliverOptions)>,
    /// URCs buffered while `+CNMI` mode is 0.
    cnmi_buffer: Vec<Vec<u8>>,
    /// Varies submit delays; fixed seed so a run can be repeated.
    rng: fastrand::Rng,
    /// What the network answers per USSD code.
    ussd: std::collections::HashMap<String, super::types::UssdReply>,
    /// Call waiting as the network keeps it for the subscription (`+CCWA` `<mode>` 0/1); it
    /// survives a reboot, unlike the URC setting.
    call_waiting: bool,
}

impl Engine {
    /// A powered-off modem; call [`Engine::power_on`] next.
    pub fn new(cfg: SimConfig, now: DateTime<Utc>) -> Self {
        let sim = if cfg.pin.is_some() {
            SimState::PinRequired { attempts_left: 3 }
        } else {
            SimState::Ready
        };
        let storage = Storage::new(first_index(cfg.profile));
        Self {
            csca: (cfg.smsc.clone(), toa(&cfg.smsc)),
            cfg,
            now,
            set: Settings::factory(),
            line: Vec::new(),
            overflow: false,
            prompt: None,
            sim,
            cfun: 1,
            booted: false,
            boot_gen: 0,
            storage,
            next_mr: 0,
            concat_ref: 1,
            assembler: Assembler::default(),
            submit_failures: None,
            undeliverable: 0,
            quiet_boot: false,
            silent: false,
            reg_fault: None,
            sim_pulled: false,
            call: None,
            call_gen: 0,
            behaviour: CallBehaviour::default(),
            network_queue: VecDeque::new(),
            cnmi_buffer: Vec::new(),
            rng: fastrand::Rng::with_seed(0x5eed),
            ussd: std::collections::HashMap::new(),
            call_waiting: false,
        }
    }

    /// Power on (first start, `AT+CFUN=1,1`, reappearing after a vanish): settings back to
    /// factory values, the SIM locked again if it has a PIN, banners on their way. Storage, the
    /// message reference counter and the SIM itself survive, as they do on real hardware.
    pub fn power_on(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        if let Some(call) = self.call.take() {
            fx.push(self.call_log(&call, CallOutcome::Failed));
        }
        self.set = Settings::factory();
        self.line.clear();
        self.prompt = None;
        self.cfun = 1;
        self.booted = false;
        self.boot_gen += 1;
        self.csca = (self.cfg.smsc.clone(), toa(&self.cfg.smsc));
        if !matches!(self.sim, SimState::Missing) {
            self.sim = match &self.cfg.pin {
                Some(_) if !matches!(self.sim, SimState::PukRequired { .. }) => {
                    SimState::PinRequired { attempts_left: 3 }
                }
                _ => self.sim,
            };
        }
        let d = self.cfg.command_delay;
        for stage in 0..3u8 {
            fx.push(Effect::Schedule {
                after: d * (u32::from(stage) * 2 + 1),
                timer: Timer::Boot {
                    gen: self.boot_gen,
                    stage,
                },
            });
        }
        fx
    }

    /// The number an outgoing call is ringing at (dialled, not yet answered), if one is.
    pub fn ringing_out(&self) -> Option<&str> {
        self.call
            .as_ref()
            .filter(|c| {
                c.direction == CallDirection::Outgoing
                    && matches!(c.state, CallState::Dialing | CallState::Alerting)
            })
            .map(|c| c.number.as_str())
    }

    /// Whether the modem currently plays dead (the silence fault).
    pub fn is_silent(&self) -> bool {
        self.silent
    }

    /// Bytes from the DTE.
    pub fn input(&mut self, bytes: &[u8], now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let mut fx = Vec::new();
        if self.silent {
            return fx;
        }
        for &b in bytes {
            if self.prompt.is_some() {
                self.prompt_byte(b, &mut fx);
            } else {
                self.command_byte(b, &mut fx);
            }
        }
        fx
    }

    fn command_byte(&mut self, b: u8, fx: &mut Vec<Effect>) {
        if self.set.echo {
            push_write(fx, Duration::ZERO, vec![vec![b]]);
        }
        match b {
            b'\r' => {
                let line = std::mem::take(&mut self.line);
                if std::mem::replace(&mut self.overflow, false) {
                    fx.extend(self.respond(Vec::new(), Final::Error, self.cfg.command_delay));
                    return;
                }
                let text = String::from_utf8_lossy(&line).into_owned();
                fx.extend(self.run_line(&text));
            }
            b'\n' | 0 => {}
            0x08 | 0x7f => {
                self.line.pop();
            }
            _ => {
                if self.line.len() >= MAX_LINE {
                    self.overflow = true;
                } else {
                    self.line.push(b);
                }
            }
        }
    }

    fn prompt_byte(&mut self, b: u8, fx: &mut Vec<Effect>) {
        let Some((kind, buf)) = self.prompt.as_mut() else {
            return;
        };
        match b {
            0x1a => {
                let (kind, buf) = self.prompt.take().expect("prompt checked above");
                let body = String::from_utf8_lossy(&buf).into_owned();
                fx.extend(self.submit(kind, body));
            }
            0x1b => {
                self.prompt = None;
                fx.extend(self.respond(Vec::new(), Final::Ok, Duration::ZERO));
            }
            b'\r' if kind.is_text() => {
                buf.push(b'\n');
                let prompt = self.prompt_bytes();
                push_write(fx, Duration::ZERO, vec![prompt]);
            }
            b'\r' | b'\n' if !kind.is_text() => {}
            b'\n' => {}
            0x08 => {
                buf.pop();
            }
            _ => {
                if buf.len() < MAX_PROMPT_INPUT {
                    buf.push(b);
                }
                if self.set.echo {
                    push_write(fx, Duration::ZERO, vec![vec![b]]);
                }
            }
        }
    }

    /// Runs one command line: each command in order until one fails or prompts.
    fn run_line(&mut self, text: &str) -> Vec<Effect> {
        let cmds = match command::parse_line(text) {
            Ok(c) => c,
            // Characters that are not a command line are ignored, as V.250 §5.2.1 says.
            Err(command::LineError::NoPrefix) => return Vec::new(),
            Err(_) => return self.respond(Vec::new(), Final::Error, self.cfg.command_delay),
        };
        let mut records = Vec::new();
        let mut after = Vec::new();
        let mut result = Final::Ok;
        for cmd in cmds {
            match self.exec(&cmd, &mut after) {
                Step::Done(r) => records.extend(r.into_iter().map(|lines| Record {
                    lines,
                    continues: false,
                })),
                Step::List(r) => {
                    records.extend(r.into_iter().enumerate().map(|(i, lines)| Record {
                        lines,
                        continues: i > 0,
                    }))
                }
                Step::Fail(f) => {
                    result = f;
                    break;
                }
                Step::Prompt(kind) => {
                    let mut chunks = self.records_bytes(&records);
                    chunks.push(self.prompt_bytes());
                    self.prompt = Some((kind, Vec::new()));
                    let mut fx = vec![Effect::Write {
                        delay: self.cfg.command_delay,
                        chunks,
                    }];
                    fx.extend(after);
                    return fx;
                }
                Step::Custom(own) => {
                    let mut fx = Vec::new();
                    if !records.is_empty() {
                        fx.push(Effect::Write {
                            delay: self.cfg.command_delay,
                            chunks: self.records_bytes(&records),
                        });
                    }
                    fx.extend(own);
                    fx.extend(after);
                    return fx;
                }
            }
        }
        let mut fx = self.respond(records, result, self.cfg.command_delay);
        fx.extend(after);
        fx
    }

    /// A response: records then a final result code, written after `delay`.
    fn respond(&self, records: Vec<Record>, result: Final, delay: Duration) -> Vec<Effect> {
        let mut chunks = self.records_bytes(&records);
        if !self.set.quiet {
            chunks.push(self.final_bytes(result));
        }
        vec![Effect::Write { delay, chunks }]
    }

    fn records_bytes(&self, records: &[Record]) -> Vec<Vec<u8>> {
        records
            .iter()
            .map(|rec| {
                let mut out = Vec::new();
                if self.set.verbose && !rec.continues {
                    out.extend_from_slice(b"\r\n");
                }
                for l in &rec.lines {
                    out.extend_from_slice(l.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out
            })
            .collect()
    }

    fn prompt_bytes(&self) -> Vec<u8> {
        if self.set.verbose {
            b"\r\n> ".to_vec()
        } else {
            b"> ".to_vec()
        }
    }

    fn final_bytes(&self, f: Final) -> Vec<u8> {
        let (text, code): (String, u8) = match f {
            Final::Ok => ("OK".into(), 0),
            Final::Error => ("ERROR".into(), 4),
            Final::NoCarrier => ("NO CARRIER".into(), 3),
            Final::Cme(n) => match self.set.cmee {
                0 => ("ERROR".into(), 4),
                1 => (format!("+CME ERROR: {n}"), 4),
                _ => (format!("+CME ERROR: {}", cme_text(n)), 4),
            },
            Final::Cms(n) => match self.set.cmee {
                2 => (format!("+CMS ERROR: {}", cms_text(n)), 4),
                _ => (format!("+CMS ERROR: {n}"), 4),
            },
        };
        let numeric_ok = !text.starts_with('+');
        if self.set.verbose {
            format!("\r\n{text}\r\n").into_bytes()
        } else if numeric_ok {
            format!("{code}\r").into_bytes()
        } else {
            format!("{text}\r\n").into_bytes()
        }
    }

    /// An unsolicited result code, framed like an information response.
    fn urc_bytes(&self, lines: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        if self.set.verbose {
            out.extend_from_slice(b"\r\n");
        }
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn urc(&self, lines: &[String]) -> Effect {
        Effect::Write {
            delay: Duration::ZERO,
            chunks: vec![self.urc_bytes(lines)],
        }
    }

    /// A message-related URC, subject to `+CNMI` mode 0 (buffered in the TA).
    fn sms_urc(&mut self, lines: &[String], placement: UrcPlacement) -> Option<Effect> {
        let bytes = self.urc_bytes(lines);
        if self.set.cnmi[0] == 0 {
            self.cnmi_buffer.push(bytes);
            return None;
        }
        Some(match placement {
            UrcPlacement::Now => Effect::Write {
                delay: Duration::ZERO,
                chunks: vec![bytes],
            },
            UrcPlacement::InsideNextResponse => Effect::HoldUrc(bytes),
        })
    }

    // ---------------------------------------------------------------- command dispatch

    fn exec(&mut self, cmd: &Command, after: &mut Vec<Effect>) -> Step {
        match cmd {
            Command::Basic { name, param } => self.exec_basic(name, param, after),
            Command::Dial { number, voice } => self.dial(number, *voice, after),
            Command::Extended { name, op } => self.exec_extended(name, op, after),
        }
    }

    fn exec_basic(&mut self, name: &str, param: &str, after: &mut Vec<Effect>) -> Step {
        let flag = match param {
            "" | "0" => Some(false),
            "1" => Some(true),
            _ => None,
        };
        match name {
            "E" => match flag {
                Some(on) => {
                    self.set.echo = on;
                    ok()
                }
                None => Step::Fail(Final::Error),
            },
            "V" => match flag {
                Some(on) => {
                    self.set.verbose = on;
                    ok()
                }
                None => Step::Fail(Final::Error),
            },
            "Q" => match flag {
                Some(on) => {
                    self.set.quiet = on;
                    ok()
                }
                None => Step::Fail(Final::Error),
            },
            "Z" | "&F" => {
                self.set = Settings::factory();
                ok()
            }
            "I" => Step::Done(vec![self.cfg.profile.identification(IMEI)]),
            "A" => self.answer_incoming(after),
            "H" => self.hang_up(after),
            "X" | "L" | "M" | "&C" | "&D" | "&W" | "&K" | "P" | "T" => ok(),
            s if s.starts_with('S') => {
                if param == "?" {
                    Step::Done(vec![vec![format!("{:03}", s_register(name))]])
                } else {
                    ok()
                }
            }
            _ => Step::Fail(Final::Error),
        }
    }

    // Long on purpose: one arm per extended AT command, the simulator's command table in one place.
    fn exec_extended(&mut self, name: &str, op: &Op, after: &mut Vec<Effect>) -> Step {
        let profile = self.cfg.profile;
        if profile.dtmf().0 == Some(name) {
            return self.dtmf_detect(op);
        }
        if Some(name) == profile.tts_command() {
            return self.tts(name, op, after);
        }
        if let Some((_, prefix)) = profile.iccid_commands().iter().find(|(c, _)| *c == name) {
            return match op {
                Op::Test => ok(),
                _ => match self.sim_check_cme() {
                    Err(f) => Step::Fail(f),
                    Ok(()) => Step::Done(vec![vec![format!("{}{ICCID}", prefix.unwrap_or(""))]]),
                },
            };
        }
        match name {
            "+CGMI" | "+GMI" => self.ident(op, profile.manufacturer()),
            "+CGMM" | "+GMM" => self.ident(op, profile.model()),
            "+CGMR" | "+GMR" => self.ident(op, profile.revision()),
            "+CGSN" | "+GSN" => self.ident(op, IMEI),
            "+GCAP" => Step::Done(vec![vec!["+GCAP: +CGSM".into()]]),
            "+CIMI" => match op {
                Op::Test => ok(),
                _ => match self.sim_check_cme() {
                    Err(f) => Step::Fail(f),
                    Ok(()) => Step::Done(vec![vec![IMSI.into()]]),
                },
            },
            "+CNUM" if matches!(op, Op::Test) => ok(),
            "+CNUM" if !matches!(op, Op::Exec) => Step::Fail(Final::Error),
            "+CNUM" => match self.sim_check_cme() {
                Err(f) => Step::Fail(f),
                Ok(()) => Step::Done(vec![vec![format!(
                    "+CNUM: \"\",\"{}\",{}",
                    self.cfg.own_number,
                    toa(&self.cfg.own_number)
                )]]),
            },
            "+CMEE" => self.numeric_setting(op, "+CMEE", 0..=2, |s| &mut s.cmee),
            "+CPIN" => self.cpin(op, after),
            "+CREG" => self.registration(op, "+CREG"),
            "+CGREG" => self.registration(op, "+CGREG"),
            "+CEREG" if profile.has_lte() => self.registration(op, "+CEREG"),
            "+CSQ" => match op {
                Op::Test => Step::Done(vec![vec!["+CSQ: (0-31,99),(0-7,99)".into()]]),
                // 27.007 §8.5 has only the execution and test forms.
                Op::Read | Op::Set(_) => Step::Fail(Final::Error),
                Op::Exec => Step::Done(vec![vec![if self.sim_pulled || self.cfun != 1 {
                    "+CSQ: 99,99".to_string()
                } else {
                    "+CSQ: 21,0".to_string()
                }]]),
            },
            "+COPS" => self.cops(op),
            "+CFUN" => self.cfun(op, after),
            "+CPAS" => match op {
                Op::Test => Step::Done(vec![vec!["+CPAS: (0-5)".into()]]),
                Op::Exec => {
                    let stat = match self.call.as_ref().map(|c| c.state) {
                        None => 0,
                        Some(CallState::Incoming) => 3,
                        Some(_) => 4,
                    };
                    Step::Done(vec![vec![format!("+CPAS: {stat}")]])
                }
                _ => Step::Fail(Final::Error),
            },
            "+CCLK" => match op {
                Op::Read => Step::Done(vec![vec![format!("+CCLK: \"{}\"", scts(self.now))]]),
                _ => ok(),
            },
            "+CMGF" => self.numeric_setting(op, "+CMGF", 0..=1, |s| &mut s.cmgf),
            "+CSCS" => self.cscs(op),
            "+CSCA" => self.csca(op),
            "+CSMS" => self.csms(op),
            "+CPMS" => self.cpms(op),
            "+CNMI" => self.cnmi(op, after),
            "+CSMP" => self.csmp(op),
            "+CSDH" => match op {
                Op::Read => Step::Done(vec![vec![format!("+CSDH: {}", u8::from(self.set.csdh))]]),
                Op::Test => Step::Done(vec![vec!["+CSDH: (0,1)".into()]]),
                Op::Set(a) => {
                    self.set.csdh = a.trim() == "1";
                    ok()
                }
                Op::Exec => {
                    self.set.csdh = false;
                    ok()
                }
            },
            "+CMGS" => self.cmgs(op),
            "+CUSD" => self.cusd(op, after),
            "+CMGR" => self.cmgr(op),
            "+CMGL" => self.cmgl(op),
            "+CMGD" => self.cmgd(op),
            "+CMGW" => self.cmgw(op),
            "+CMSS" => self.cmss(op),
            "+CNMA" => ok(),
            "+CLCC" => match op {
                Op::Set(a) => {
                    self.set.clcc_urc = a.trim() == "1";
                    ok()
                }
                Op::Read => Step::Done(vec![vec![format!(
                    "+CLCC: {}",
                    u8::from(self.set.clcc_urc)
                )]]),
                Op::Test => ok(),
                Op::Exec => Step::Done(self.clcc_records()),
            },
            "+CLIP" => self.flag_setting(op, "+CLIP", |s| &mut s.clip, ",1"),
            "+COLP" => self.flag_setting(op, "+COLP", |s| &mut s.colp, ",1"),
            "+CRC" => self.flag_setting(op, "+CRC", |s| &mut s.crc, ""),
            // Only the execution form hangs up: clients probe with `AT+CHUP=?` on connect.
            "+CHUP" => match op {
                Op::Exec => self.hang_up(after),
                Op::Test => ok(),
                _ => Step::Fail(Final::Error),
            },
            "+CCWA" => self.ccwa(op),
            "+CBC" => self.cbc(op),
            "+CPBS" => self.cpbs(op),
            "+VTS" | "+VTD" => match (&self.call, op) {
                (_, Op::Test) => ok(),
                (Some(c), _) if c.state == CallState::Active => ok(),
                _ => Step::Fail(Final::Cme(3)),
            },
            // 27.007 §8.37; SIMCom modules do not implement it.
            "+CLAC" if !matches!(profile, SimProfile::Sim800 | SimProfile::Sim7600) => {
                let mut cmds: Vec<String> = SUPPORTED.iter().map(|c| c.to_string()).collect();
                cmds.extend(profile.dtmf().0.map(str::to_string));
                cmds.extend(profile.tts_command().map(str::to_string));
                cmds.extend(profile.iccid_commands().iter().map(|(c, _)| c.to_string()));
                if profile.has_lte() {
                    cmds.push("+CEREG".into());
                }
                Step::Done(vec![cmds])
            }
            // Audio and port settings: accepted, not simulated; reads show a plausible value.
            "+CVHU" | "+CLVL" | "+CMUT" | "+CRSL" | "+CALM" | "+IFC" | "+ICF" | "+CTTSPARAM"
            | "+QTTSETUP" | "+CSDVC" | "+QAUDMOD" => match op {
                Op::Read => Step::Done(vec![vec![match name {
                    "+IFC" => "+IFC: 0,0".to_string(),
                    "+ICF" => "+ICF: 3,3".to_string(),
                    "+CLVL" => "+CLVL: 5".to_string(),
                    _ => format!("{name}: 0"),
                }]]),
                _ => ok(),
            },
            "+IPR" => match op {
                Op::Read => Step::Done(vec![vec!["+IPR: 115200".into()]]),
                _ => ok(),
            },
            "+CGATT" => match op {
                Op::Read => Step::Done(vec![vec![format!(
                    "+CGATT: {}",
                    u8::from(self.registered())
                )]]),
                Op::Test => Step::Done(vec![vec!["+CGATT: (0,1)".into()]]),
                _ => ok(),
            },
            _ => Step::Fail(Final::Error),
        }
    }

    fn ident(&self, op: &Op, value: &str) -> Step {
        match op {
            Op::Test => ok(),
            _ => Step::Done(vec![vec![value.to_string()]]),
        }
    }

    fn numeric_setting(
        &mut self,
        op: &Op,
        name: &str,
        range: std::ops::RangeInclusive<u8>,
        field: impl Fn(&mut Settings) -> &mut u8,
    ) -> Step {
        match op {
            Op::Read => {
                let v = *field(&mut self.set);
                Step::Done(vec![vec![format!("{name}: {v}")]])
            }
            Op::Test => Step::Done(vec![vec![format!(
                "{name}: ({}-{})",
                range.start(),
                range.end()
            )]]),
            Op::Set(a) => match a.trim().parse::<u8>() {
                Ok(v) if range.contains(&v) => {
                    *field(&mut self.set) = v;
                    ok()
                }
                _ => Step::Fail(Final::Cme(50)),
            },
            Op::Exec => {
                *field(&mut self.set) = *range.start();
                ok()
            }
        }
    }

    fn flag_setting(
        &mut self,
        op: &Op,
        name: &str,
        field: impl Fn(&mut Settings) -> &mut bool,
        read_suffix: &str,
    ) -> Step {
        match op {
            Op::Read => {
                let v = u8::from(*field(&mut self.set));
                Step::Done(vec![vec![format!("{name}: {v}{read_suffix}")]])
            }
            Op::Test => Step::Done(vec![vec![format!("{name}: (0,1)")]]),
            Op::Set(a) => match a.trim() {
                "0" => {
                    *field(&mut self.set) = false;
                    ok()
                }
                "1" => {
                    *field(&mut self.set) = true;
                    ok()
                }
                _ => Step::Fail(Final::Cme(50)),
            },
            Op::Exec => ok(),
        }
    }

    // ---------------------------------------------------------------- timers

    /// A timer the engine armed has fired.
    pub fn timer(&mut self, timer: Timer, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let fx = self.timer_inner(timer);
        if self.silent {
            fx.into_iter()
                .filter(|e| !matches!(e, Effect::Write { .. } | Effect::HoldUrc(_)))
                .collect()
        } else {
            fx
        }
    }

    // Long on purpose: one arm per simulated timer (boot stages, network, calls, reports).
    fn timer_inner(&mut self, timer: Timer) -> Vec<Effect> {
        let mut fx = Vec::new();
        match timer {
            Timer::Boot { gen, stage } if gen == self.boot_gen && self.quiet_boot => {
                // A brown-out boot: the module comes back without a word.
                if stage == 2 {
                    let was = self.registered();
                    self.booted = true;
                    self.quiet_boot = false;
                    self.registration_changed(was, &mut fx);
                }
            }
            Timer::Boot { gen, stage } if gen == self.boot_gen => match stage {
                0 => {
                    for b in self.cfg.profile.boot_banners() {
                        fx.push(self.urc(&[b.to_string()]));
                    }
                }
                1 if self.cfg.profile.reports_cpin() => fx.push(self.cpin_urc()),
                2 => {
                    let was = self.registered();
                    self.booted = true;
                    if self.sim == SimState::Ready {
                        for b in self.cfg.profile.ready_banners() {
                            fx.push(self.urc(&[b.to_string()]));
                        }
                    }
                    self.registration_changed(was, &mut fx);
                }
                u8::MAX => fx.extend(self.power_on(self.now)),
                _ => {}
            },
            Timer::Boot { .. } => {}
            Timer::Call { gen, step } => {
                let Some(call) = self.call.as_mut().filter(|c| c.gen == gen) else {
                    return fx;
                };
                match step {
                    CallStep::Alerting if call.state == CallState::Dialing => {
                        call.state = CallState::Alerting;
                        if let Some(e) = self.clcc_urc_effect() {
                            fx.push(e);
                        }
                        let d = self.cfg.command_delay + Duration::from_millis(20);
                        let (after, step) = match self.behaviour {
                            CallBehaviour::Manual | CallBehaviour::NoAnswer => {
                                (self.cfg.ring_timeout, CallStep::NoAnswer)
                            }
                            CallBehaviour::AnswerAfter(t) => (t, CallStep::Answer),
                            CallBehaviour::Busy => (d, CallStep::Busy),
                            CallBehaviour::Reject => (d, CallStep::Reject),
                        };
                        fx.push(Effect::Schedule {
                            after,
                            timer: Timer::Call { gen, step },
                        });
                    }
                    CallStep::Answer if call.state == CallState::Alerting => {
                        fx.extend(self.far_answer());
                    }
                    CallStep::Busy => fx.extend(self.end_call("BUSY", CallOutcome::Busy)),
                    CallStep::Reject => {
                        fx.extend(self.end_call("NO CARRIER", CallOutcome::Rejected))
                    }
                    CallStep::NoAnswer if call.state != CallState::Active => {
                        fx.extend(self.end_call("NO ANSWER", CallOutcome::NoAnswer))
                    }
                    _ => {}
                }
            }
            Timer::Ring { gen } => {
                let Some(call) = self.call.as_ref().filter(|c| c.gen == gen) else {
                    return fx;
                };
                if call.state != CallState::Incoming {
                    return fx;
                }
                if (self.now - call.started).to_std().unwrap_or_default() >= self.cfg.ring_timeout {
                    let call = self.call.take().expect("checked above");
                    fx.push(self.urc(&["NO CARRIER".to_string()]));
                    fx.push(self.call_log(&call, CallOutcome::Missed));
                    return fx;
                }
                fx.extend(self.ring_effects());
            }
            Timer::StatusReport {
                reference,
                to,
                submitted,
                status,
            } => fx.extend(self.status_report(reference, &to, submitted, status)),
            Timer::TtsDone { urc } => fx.push(self.urc(&[urc])),
            Timer::Ussd { line } => fx.push(self.urc(&[line])),
            Timer::DeliverPart {
                from,
                part,
                placement,
            } => {
                let (_, e) = self.route_part(&from, &part, placement);
                fx.extend(e);
            }
        }
        fx
    }

    // ---------------------------------------------------------------- control

    fn silence_filter(&self, fx: Vec<Effect>) -> Vec<Effect> {
        if self.silent {
            fx.into_iter()
                .filter(|e| !matches!(e, Effect::Write { .. } | Effect::HoldUrc(_)))
                .collect()
        } else {
            fx
        }
    }

    /// Injects a fault.
    pub fn fault(&mut self, f: Fault, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let mut fx = vec![Effect::Log(NetworkEntry::Fault {
            at: now,
            fault: f.clone(),
        })];
        match f {
            Fault::Silence => self.silent = true,
            Fault::SubmitError { count } => {
                self.submit_failures = (count > 0).then_some((SubmitFailure::Error, count));
            }
            Fault::SubmitCms500 { count } => {
                self.submit_failures = (count > 0).then_some((SubmitFailure::Cms500, count));
            }
            Fault::Undeliverable { count } => self.undeliverable = count,
            Fault::Garbage => fx.push(Effect::Write {
                delay: Duration::ZERO,
                chunks: vec![
                    b"\r\n+CMT".to_vec(),
                    vec![0xff, 0x00, 0xfe, 0x81, b'\r', 0x1b, b'O', b'K'],
                    b"\r\n\xc3(garbled)\r\n".to_vec(),
                ],
            }),
            Fault::Vanish { after } => fx.push(Effect::Vanish(after)),
            Fault::Brownout => {
                fx.extend(self.power_on(now));
                self.quiet_boot = true;
            }
            Fault::LoseRegistration { searching } => {
                let was = self.registered();
                self.reg_fault = Some(searching);
                self.registration_changed(was, &mut fx);
            }
            Fault::SimMissing => {
                let was = self.registered();
                self.sim_pulled = true;
                self.sim = SimState::Missing;
                if self.cfg.profile.reports_cpin() {
                    fx.push(self.urc(&["+CPIN: NOT INSERTED".to_string()]));
                }
                self.registration_changed(was, &mut fx);
            }
        }
        self.silence_filter(fx)
    }

    /// Clears every fault: answering again, submits succeed, registered, SIM back (locked again
    /// if it has a PIN, as a reinserted SIM is).
    pub fn heal(&mut self, now: DateTime<Utc>) -> Vec<Effect> {
        self.now = now;
        let was = self.registered();
        let mut fx = vec![Effect::Log(NetworkEntry::Heal { at: now })];
        self.silent = false;
        self.submit_failures = None;
        self.undeliverable = 0;
        self.reg_fault = None;
        if self.sim_pulled {
            self.sim_pulled = false;
            self.sim = if self.cfg.pin.is_some() {
                SimState::PinRequired { attempts_left: 3 }
            } else {
                SimState::Ready
            };
            if self.cfg.profile.reports_cpin() {
                fx.push(self.cpin_urc());
            }
        }
        self.registration_changed(was, &mut fx);
        fx
    }
}

fn ok() -> Step {
    Step::Done(Vec::new())
}

fn push_write(fx: &mut Vec<Effect>, delay: Duration, chunks: Vec<Vec<u8>>) {
    // Coalesce consecutive immediate single-chunk writes (echo) into one.
    if delay.is_zero() && chunks.len() == 1 {
        if let Some(Effect::Write {
            delay: d,
            chunks: prev,
        }) = fx.last_mut()
        {
            if d.is_zero() && prev.len() == 1 {
                prev[0].extend_from_slice(&chunks[0]);
                return;
            }
        }
    }
    fx.push(Effect::Write { delay, chunks });
}

/// Type of address: 145 international (`+`), 129 otherwise.
fn toa(number: &str) -> u8 {
    if number.starts_with('+') {
        145
    } else {
        129
    }
}

fn dir_code(d: CallDirection) -> u8 {
    match d {
        CallDirection::Outgoing => 0,
        CallDirection::Incoming => 1,
    }
}

/// Text-mode `<stat>` names (3GPP TS 27.005 §3.1).
fn stat_text(stat: u8) -> &'static str {
    match stat {
        0 => "REC UNREAD",
        1 => "REC READ",
        2 => "STO UNSENT",
        _ => "STO SENT",
    }
}

fn first_index(p: SimProfile) -> usize {
    // Quectel numbers storage slots from 0, SIMCom and most others from 1.
    if p == SimProfile::Ec25 {
        0
    } else {
        1
    }
}

fn s_register(name: &str) -> u8 {
    match name {
        "S3" => 13,
        "S4" => 10,
        "S5" => 8,
        "S7" => 60,
        "S8" => 2,
        "S10" => 15,
        _ => 0,
    }
}

/// The network's time zone for service-centre time stamps: UTC+1 (a zone that is not UTC, so
/// drivers must honour the zone field).
fn local(t: DateTime<Utc>) -> DateTime<FixedOffset> {
    t.with_timezone(&FixedOffset::east_opt(3600).expect("valid offset"))
}

/// A text-mode time stamp `yy/MM/dd,hh:mm:ss±zz` (zone in quarter hours).
fn scts(t: DateTime<Utc>) -> String {
    let l = local(t);
    let q = l.offset().local_minus_utc() / 900;
    format!("{}{:+03}", l.format("%y/%m/%d,%H:%M:%S"), q)
}

fn cme_text(n: u16) -> &'static str {
    match n {
        3 => "operation not allowed",
        4 => "operation not supported",
        10 => "SIM not inserted",
        11 => "SIM PIN required",
        12 => "SIM PUK required",
        13 => "SIM failure",
        14 => "SIM busy",
        16 => "incorrect password",
        20 => "memory full",
        21 => "invalid index",
        30 => "no network service",
        50 => "incorrect parameters",
        _ => "unknown",
    }
}

fn cms_text(n: u16) -> &'static str {
    match n {
        300 => "ME failure",
        302 => "operation not allowed",
        303 => "operation not supported",
        304 => "invalid PDU mode parameter",
        305 => "invalid text mode parameter",
        310 => "SIM not inserted",
        311 => "SIM PIN required",
        312 => "SIM PUK required",
        321 => "invalid memory index",
        322 => "memory full",
        330 => "SMSC address unknown",
        331 => "no network service",
        332 => "network timeout",
        _ => "unknown error",
    }
}

#[cfg(test)]
mod tests;
