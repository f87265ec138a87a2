//! The simulated modem's state machine: bytes in, effects out. No I/O, no clock, no sleeping.
//!
//! [`Engine`] owns everything a module remembers — terminal settings (echo, verbose, CMEE), SIM
//! and registration state, SMS settings and storage, the call, faults — and turns
//! (a) bytes from the DTE, (b) timers it scheduled itself and (c) control requests into
//! [`Effect`]s: bytes to write (after a delay), entries for the network log, timers to arm.
//! The owning task in [`super::task`] performs them. Keeping this pure is what lets the unit tests
//! below drive whole AT dialogues without a PTY and without waiting.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use super::command::{self, split_args, Arg, Command, Op};
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

/// Commands every profile answers (for `AT+CLAC`; profile-specific ones are added).
const SUPPORTED: &[&str] = &[
    "&C", "&D", "&F", "&K", "&W", "A", "D", "E", "H", "I", "L", "M", "Q", "S0", "V", "X", "Z",
    "+CALM", "+CCLK", "+CFUN", "+CGATT", "+CGMI", "+CGMM", "+CGMR", "+CGREG", "+CGSN", "+CHUP",
    "+CIMI", "+CLAC", "+CLCC", "+CLIP", "+CLVL", "+CMEE", "+CMGD", "+CMGF", "+CMGL", "+CMGR",
    "+CMGS", "+CMUT", "+CNMA", "+CNMI", "+CNUM", "+COLP", "+COPS", "+CPAS", "+CPIN", "+CPMS",
    "+CRC", "+CREG", "+CRSL", "+CSCA", "+CSCS", "+CSDH", "+CSMP", "+CSMS", "+CSQ", "+CVHU",
    "+GCAP", "+GMI", "+GMM", "+GMR", "+GSN", "+ICF", "+IFC", "+IPR", "+VTD", "+VTS",
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
    },
    /// A TTS utterance finished playing.
    TtsDone { urc: String },
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

/// A final result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    Ok,
    Error,
    Cme(u16),
    Cms(u16),
    NoCarrier,
    Busy,
    NoAnswer,
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
            silent: false,
            reg_fault: None,
            sim_pulled: false,
            call: None,
            call_gen: 0,
            behaviour: CallBehaviour::default(),
            network_queue: VecDeque::new(),
            cnmi_buffer: Vec::new(),
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
            b'\r' if matches!(kind, PromptKind::TextSubmit { .. }) => {
                buf.push(b'\n');
                let prompt = self.prompt_bytes();
                push_write(fx, Duration::ZERO, vec![prompt]);
            }
            b'\r' | b'\n' if matches!(kind, PromptKind::PduSubmit { .. }) => {}
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
            Final::Busy => ("BUSY".into(), 7),
            Final::NoAnswer => ("NO ANSWER".into(), 8),
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

    fn exec_extended(&mut self, name: &str, op: &Op, after: &mut Vec<Effect>) -> Step {
        let profile = self.cfg.profile;
        if let Some((cmd, report)) = profile.dtmf().0.map(|c| (c, profile.dtmf().1)) {
            if name == cmd {
                return self.dtmf_detect(op, report);
            }
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
            "+CREG" => self.registration(op, "+CREG", after),
            "+CGREG" => self.registration(op, "+CGREG", after),
            "+CEREG" if profile.has_lte() => self.registration(op, "+CEREG", after),
            "+CSQ" => match op {
                Op::Test => Step::Done(vec![vec!["+CSQ: (0-31,99),(0-7,99)".into()]]),
                _ => Step::Done(vec![vec![if self.sim_pulled || self.cfun != 1 {
                    "+CSQ: 99,99".to_string()
                } else {
                    "+CSQ: 21,0".to_string()
                }]]),
            },
            "+COPS" => self.cops(op),
            "+CFUN" => self.cfun(op, after),
            "+CPAS" => {
                let stat = match self.call.as_ref().map(|c| c.state) {
                    None => 0,
                    Some(CallState::Incoming) => 3,
                    Some(_) => 4,
                };
                Step::Done(vec![vec![format!("+CPAS: {stat}")]])
            }
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
            "+CMGR" => self.cmgr(op),
            "+CMGL" => self.cmgl(op),
            "+CMGD" => self.cmgd(op),
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
            "+CHUP" => self.hang_up(after),
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

    // ---------------------------------------------------------------- SIM and network

    fn sim_check_cme(&self) -> Result<(), Final> {
        match self.sim {
            SimState::Ready => Ok(()),
            SimState::PinRequired { .. } => Err(Final::Cme(11)),
            SimState::PukRequired { .. } => Err(Final::Cme(12)),
            SimState::Missing => Err(Final::Cme(10)),
        }
    }

    fn sim_check_cms(&self) -> Result<(), Final> {
        match self.sim {
            SimState::Ready => Ok(()),
            SimState::PinRequired { .. } => Err(Final::Cms(311)),
            SimState::PukRequired { .. } => Err(Final::Cms(312)),
            SimState::Missing => Err(Final::Cms(310)),
        }
    }

    fn cpin_text(&self) -> Option<&'static str> {
        match self.sim {
            SimState::Ready => Some("READY"),
            SimState::PinRequired { .. } => Some("SIM PIN"),
            SimState::PukRequired { .. } => Some("SIM PUK"),
            SimState::Missing => None,
        }
    }

    fn cpin(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
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

    fn cpin_urc(&self) -> Effect {
        let t = self.cpin_text().unwrap_or("NOT INSERTED");
        self.urc(&[format!("+CPIN: {t}")])
    }

    /// The SIM became usable: banners, registration, held messages.
    fn unlock(&mut self, after: &mut Vec<Effect>) {
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
    fn registered(&self) -> bool {
        self.booted
            && self.sim == SimState::Ready
            && self.cfun == 1
            && self.reg_fault.is_none()
            && !self.sim_pulled
    }

    fn reg_stat(&self) -> u8 {
        if self.registered() {
            1
        } else if self.sim == SimState::Ready && self.cfun == 1 && self.reg_fault != Some(false) {
            2
        } else {
            0
        }
    }

    fn reg_line(&self, name: &str, n: u8, unsolicited: bool) -> String {
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

    fn registration(&mut self, op: &Op, name: &str, after: &mut Vec<Effect>) -> Step {
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
                    let _ = after;
                    ok()
                }
                _ => Step::Fail(Final::Cme(50)),
            },
        }
    }

    /// Emits `+CREG`/`+CGREG`/`+CEREG` URCs if the state changed, and hands held messages over
    /// once the modem is reachable again.
    fn registration_changed(&mut self, was: bool, fx: &mut Vec<Effect>) {
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

    fn cops(&mut self, op: &Op) -> Step {
        let act = self
            .cfg
            .profile
            .access_technology()
            .map(|a| format!(",{a}"))
            .unwrap_or_default();
        match op {
            Op::Read | Op::Exec => {
                if self.registered() {
                    Step::Done(vec![vec![format!("+COPS: 0,0,\"{OPERATOR}\"{act}")]])
                } else {
                    Step::Done(vec![vec!["+COPS: 0".into()]])
                }
            }
            Op::Test => Step::Done(vec![vec![format!(
                "+COPS: (2,\"{OPERATOR}\",\"PBNET\",\"{OPERATOR_NUMERIC}\"{act}),,(0-4),(0-2)"
            )]]),
            Op::Set(_) => ok(),
        }
    }

    fn cfun(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
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

    // ---------------------------------------------------------------- SMS settings

    fn cscs(&mut self, op: &Op) -> Step {
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

    fn csca(&mut self, op: &Op) -> Step {
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

    fn csms(&mut self, op: &Op) -> Step {
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

    fn cpms(&mut self, op: &Op) -> Step {
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

    fn cnmi(&mut self, op: &Op, after: &mut Vec<Effect>) -> Step {
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

    fn csmp(&mut self, op: &Op) -> Step {
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
    fn decode_cscs(&self, s: &str) -> String {
        if self.set.cscs == "UCS2" {
            sms::ucs2_hex_to_string(s).unwrap_or_else(|| s.to_string())
        } else {
            s.to_string()
        }
    }

    fn encode_cscs(&self, s: &str) -> String {
        if self.set.cscs == "UCS2" {
            sms::string_to_ucs2_hex(s)
        } else {
            s.to_string()
        }
    }

    // ---------------------------------------------------------------- SMS submit

    fn cmgs(&mut self, op: &Op) -> Step {
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

    fn submit(&mut self, kind: PromptKind, body: String) -> Vec<Effect> {
        let now = self.now;
        let sms_delay = self.cfg.sms_delay;
        let refuse = |eng: &Engine, f: Final, reason: String| -> Vec<Effect> {
            let mut fx = eng.respond(Vec::new(), f, sms_delay);
            let result = String::from_utf8_lossy(&eng.final_bytes(f))
                .trim()
                .to_string();
            fx.push(Effect::Log(NetworkEntry::SmsRefused {
                at: now,
                result,
                reason,
            }));
            fx
        };
        // Decode first: a malformed PDU is refused at once whatever the network does.
        let parsed = match &kind {
            PromptKind::PduSubmit { tpdu_len } => sms::decode_submit(body.trim(), *tpdu_len),
            PromptKind::TextSubmit { to } => {
                let text = self.decode_cscs(body.trim_end_matches('\n'));
                Ok(sms::text_submit(to, &text, self.set.csmp))
            }
        };
        let sub = match parsed {
            Ok(s) => s,
            Err(e) => {
                let code = if matches!(kind, PromptKind::PduSubmit { .. }) {
                    304
                } else {
                    305
                };
                return refuse(self, Final::Cms(code), e);
            }
        };
        if let Err(f) = self.sim_check_cms() {
            return refuse(self, f, "SIM not ready".into());
        }
        if !self.registered() {
            return refuse(self, Final::Cms(331), "no network service".into());
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
            return refuse(self, f, "injected fault".into());
        }
        let mr = self.next_mr;
        self.next_mr = self.next_mr.wrapping_add(1);
        let mut fx = vec![Effect::Write {
            delay: sms_delay,
            chunks: vec![
                self.urc_bytes(&[format!("+CMGS: {mr}")]),
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
        if sub.status_report_requested {
            fx.push(Effect::Schedule {
                after: sms_delay + self.cfg.delivery_report_delay,
                timer: Timer::StatusReport {
                    reference: mr,
                    to: sub.to,
                    submitted: now,
                },
            });
        }
        fx
    }

    // ---------------------------------------------------------------- SMS storage

    fn cmgr(&mut self, op: &Op) -> Step {
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

    fn cmgl(&mut self, op: &Op) -> Step {
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

    fn cmgd(&mut self, op: &Op) -> Step {
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

    // ---------------------------------------------------------------- calls

    fn dial(&mut self, number: &str, voice: bool, after: &mut Vec<Effect>) -> Step {
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

    fn answer_incoming(&mut self, after: &mut Vec<Effect>) -> Step {
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

    fn hang_up(&mut self, after: &mut Vec<Effect>) -> Step {
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

    fn voice_call_end(&self, call: &Call) -> String {
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

    fn call_log(&self, call: &Call, outcome: CallOutcome) -> Effect {
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

    fn clcc_records(&self) -> Vec<Vec<String>> {
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

    fn clcc_urc_effect(&self) -> Option<Effect> {
        if !self.set.clcc_urc {
            return None;
        }
        let recs = self.clcc_records();
        recs.first().map(|r| self.urc(r))
    }

    /// The far end ends an outgoing call attempt or a call in progress with `result`.
    fn end_call(&mut self, result: &str, outcome: CallOutcome) -> Vec<Effect> {
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

    fn dtmf_detect(&mut self, op: &Op, _report: DtmfReport) -> Step {
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

    fn tts(&mut self, name: &str, op: &Op, after: &mut Vec<Effect>) -> Step {
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

    fn timer_inner(&mut self, timer: Timer) -> Vec<Effect> {
        let mut fx = Vec::new();
        match timer {
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
            } => fx.extend(self.status_report(reference, &to, submitted)),
            Timer::TtsDone { urc } => fx.push(self.urc(&[urc])),
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

    fn far_answer(&mut self) -> Vec<Effect> {
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

    fn ring_effects(&mut self) -> Vec<Effect> {
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

    fn status_report(&mut self, reference: u8, to: &str, submitted: DateTime<Utc>) -> Vec<Effect> {
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
            status: 0,
            routed: routed.to_string(),
        }));
        if ds == 0 || self.sim != SimState::Ready {
            return fx;
        }
        let sc_time = local(submitted);
        let discharge = local(self.now);
        let encoded = match sms::encode_status_report(reference, to, sc_time, discharge, 0) {
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
            status: 0,
        };
        if ds == 1 {
            let lines = if self.set.cmgf == 0 {
                vec![
                    format!("+CDS: {}", encoded.tpdu_len),
                    encoded.hex_with_smsc.clone(),
                ]
            } else {
                vec![format!(
                    "+CDS: 6,{reference},\"{to}\",{},\"{}\",\"{}\",0",
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

    // ---------------------------------------------------------------- control

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

    fn deliver_now(
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
    fn route_part(
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

    fn silence_filter(&self, fx: Vec<Effect>) -> Vec<Effect> {
        if self.silent {
            fx.into_iter()
                .filter(|e| !matches!(e, Effect::Write { .. } | Effect::HoldUrc(_)))
                .collect()
        } else {
            fx
        }
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
            Fault::Garbage => fx.push(Effect::Write {
                delay: Duration::ZERO,
                chunks: vec![
                    b"\r\n+CMT".to_vec(),
                    vec![0xff, 0x00, 0xfe, 0x81, b'\r', 0x1b, b'O', b'K'],
                    b"\r\n\xc3(garbled)\r\n".to_vec(),
                ],
            }),
            Fault::Vanish { after } => fx.push(Effect::Vanish(after)),
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
mod tests {
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
        assert_eq!(h.at("ATD+4915112345678;"), "\r\nOK\r\n");
        assert_eq!(
            h.at("AT+CLCC"),
            "\r\n+CLCC: 1,0,2,0,0,\"+4915112345678\",145\r\n\r\nOK\r\n"
        );
        h.fire_one();
        assert_eq!(
            h.at("AT+CLCC"),
            "\r\n+CLCC: 1,0,3,0,0,\"+4915112345678\",145\r\n\r\nOK\r\n"
        );
        let fx = h.e.answer(h.now).unwrap();
        h.apply(fx);
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
    fn overlong_lines_are_refused() {
        let mut h = quiet(SimProfile::Generic);
        let long = format!("AT+CSCA=\"{}\"", "1".repeat(MAX_LINE + 10));
        assert_eq!(h.at(&long), "\r\nERROR\r\n");
        assert_eq!(h.at("AT"), "\r\nOK\r\n");
    }
}
