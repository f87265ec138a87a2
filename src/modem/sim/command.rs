//! Pure parsing of one AT command line into its commands (ITU-T V.250 §5.2, 3GPP TS 27.007 §4).
//!
//! Owns only syntax: which commands a line holds, their operation (`?`, `=?`, `=…`) and their
//! raw arguments. What a command *does* lives in [`super::engine`]. No I/O, no clock.
//!
//! The rules followed, as real modules apply them:
//! - a line starts with `AT` (any case) and was terminated by `<CR>`, which the caller removed;
//! - spaces outside double quotes are ignored;
//! - basic commands (`E0`, `V1`, `I`, `H`, `A`, `Z`, `&F`, `S0=0`) follow each other directly:
//!   `ATE0V1`;
//! - extended commands start with `+` (or a vendor prefix `^ $ % * #`) and are separated by `;`:
//!   `AT+CMEE=1;+CREG=2`;
//! - `D` takes the rest of the line, a trailing `;` making it a voice call.

use std::fmt;

/// What an extended command asks: run, read (`?`), test (`=?`) or set (`=<args>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `AT+CGMI`
    Exec,
    /// `AT+CREG?`
    Read,
    /// `AT+CSCS=?`
    Test,
    /// `AT+CMEE=2`: the raw argument text after `=` (may be empty).
    Set(String),
}

/// One command from a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A basic V.250 command: its upper-case name (`E`, `&F`, `S0`) and its numeric parameter
    /// text (`"0"`, empty when absent). `S`-registers carry `=n` or `?` in `param`.
    Basic { name: String, param: String },
    /// `ATD<dial string>`; `voice` when the string ended in `;`.
    Dial { number: String, voice: bool },
    /// An extended command: upper-case name with its prefix (`+CMGS`) and operation.
    Extended { name: String, op: Op },
}

/// Why a line is not a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// The line does not start with `AT`.
    NoPrefix,
    /// A character that starts no command (`ATÜ`), at this byte offset after `AT`.
    Unexpected(usize),
    /// A double quote was not closed.
    UnclosedQuote,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LineError::NoPrefix => write!(f, "line does not start with AT"),
            LineError::Unexpected(at) => write!(f, "unexpected character at offset {at}"),
            LineError::UnclosedQuote => write!(f, "unclosed double quote"),
        }
    }
}

/// Splits one command line (without its `<CR>`) into commands.
///
/// An empty `AT` yields an empty list (the modem answers `OK`).
pub fn parse_line(line: &str) -> Result<Vec<Command>, LineError> {
    let trimmed = line.trim_start();
    let bytes = trimmed.as_bytes();
    if bytes.len() < 2 || !bytes[..2].eq_ignore_ascii_case(b"AT") {
        return Err(LineError::NoPrefix);
    }
    let body = strip_spaces(&trimmed[2..])?;
    let chars: Vec<char> = body.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ';' => i += 1,
            '+' | '^' | '$' | '%' | '*' | '#' => {
                let (cmd, next) = parse_extended(&chars, i);
                out.push(cmd);
                i = next;
            }
            'D' | 'd' => {
                let rest: String = chars[i + 1..].iter().collect();
                let (number, voice) = match rest.strip_suffix(';') {
                    Some(n) => (n.to_string(), true),
                    None => (rest, false),
                };
                out.push(Command::Dial { number, voice });
                i = chars.len();
            }
            '&' => {
                let Some(letter) = chars.get(i + 1).filter(|c| c.is_ascii_alphabetic()) else {
                    return Err(LineError::Unexpected(i));
                };
                let (param, next) = take_digits(&chars, i + 2);
                out.push(Command::Basic {
                    name: format!("&{}", letter.to_ascii_uppercase()),
                    param,
                });
                i = next;
            }
            'S' | 's' => {
                let (reg, mut next) = take_digits(&chars, i + 1);
                let mut param = String::new();
                if chars.get(next) == Some(&'?') {
                    param.push('?');
                    next += 1;
                } else if chars.get(next) == Some(&'=') {
                    let (value, after) = take_digits(&chars, next + 1);
                    param = format!("={value}");
                    next = after;
                }
                out.push(Command::Basic {
                    name: format!("S{reg}"),
                    param,
                });
                i = next;
            }
            c if c.is_ascii_alphabetic() => {
                let (param, next) = take_digits(&chars, i + 1);
                out.push(Command::Basic {
                    name: c.to_ascii_uppercase().to_string(),
                    param,
                });
                i = next;
            }
            _ => return Err(LineError::Unexpected(i)),
        }
    }
    Ok(out)
}

/// Splits an argument list at commas outside quotes. Quoted arguments are returned without their
/// quotes; an empty argument is `None`.
pub fn split_args(args: &str) -> Vec<Option<Arg>> {
    if args.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    for c in args.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            ',' if !quoted => {
                out.push(finish_arg(&mut cur, &mut was_quoted));
            }
            c => cur.push(c),
        }
    }
    out.push(finish_arg(&mut cur, &mut was_quoted));
    out
}

/// One argument of an extended command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A double-quoted string, quotes removed.
    Str(String),
    /// An unquoted token, usually a number.
    Raw(String),
}

impl Arg {
    /// The text of the argument, quoted or not.
    pub fn text(&self) -> &str {
        match self {
            Arg::Str(s) | Arg::Raw(s) => s,
        }
    }

    /// The argument as an unsigned number, if it is one.
    pub fn number(&self) -> Option<u32> {
        match self {
            Arg::Raw(s) => s.trim().parse().ok(),
            Arg::Str(_) => None,
        }
    }
}

fn finish_arg(cur: &mut String, was_quoted: &mut bool) -> Option<Arg> {
    let text = std::mem::take(cur);
    let quoted = std::mem::replace(was_quoted, false);
    if quoted {
        Some(Arg::Str(text))
    } else if text.trim().is_empty() {
        None
    } else {
        Some(Arg::Raw(text.trim().to_string()))
    }
}

fn strip_spaces(s: &str) -> Result<String, LineError> {
    let mut out = String::with_capacity(s.len());
    let mut quoted = false;
    for c in s.chars() {
        if c == '"' {
            quoted = !quoted;
        }
        if quoted || c != ' ' {
            out.push(c);
        }
    }
    if quoted {
        return Err(LineError::UnclosedQuote);
    }
    Ok(out)
}

fn take_digits(chars: &[char], start: usize) -> (String, usize) {
    let mut i = start;
    let mut s = String::new();
    while let Some(c) = chars.get(i).filter(|c| c.is_ascii_digit()) {
        s.push(*c);
        i += 1;
    }
    (s, i)
}

fn parse_extended(chars: &[char], start: usize) -> (Command, usize) {
    let mut i = start + 1;
    let mut name = String::from(chars[start]);
    while let Some(c) = chars.get(i).filter(|c| {
        c.is_ascii_alphanumeric() || matches!(c, '!' | '%' | '-' | '.' | '/' | ':' | '_')
    }) {
        name.push(c.to_ascii_uppercase());
        i += 1;
    }
    let op = match (chars.get(i), chars.get(i + 1)) {
        (Some('='), Some('?')) => {
            i += 2;
            Op::Test
        }
        (Some('?'), _) => {
            i += 1;
            Op::Read
        }
        (Some('='), _) => {
            i += 1;
            let mut args = String::new();
            let mut quoted = false;
            while let Some(&c) = chars.get(i) {
                if c == '"' {
                    quoted = !quoted;
                }
                if c == ';' && !quoted {
                    break;
                }
                args.push(c);
                i += 1;
            }
            Op::Set(args)
        }
        _ => Op::Exec,
    };
    (Command::Extended { name, op }, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(name: &str, op: Op) -> Command {
        Command::Extended {
            name: name.into(),
            op,
        }
    }

    fn basic(name: &str, param: &str) -> Command {
        Command::Basic {
            name: name.into(),
            param: param.into(),
        }
    }

    #[test]
    fn chained_extended_commands_split_at_semicolons() {
        assert_eq!(
            parse_line("AT+CMEE=1;+CREG=2").unwrap(),
            vec![
                ext("+CMEE", Op::Set("1".into())),
                ext("+CREG", Op::Set("2".into()))
            ]
        );
    }

    #[test]
    fn basic_commands_follow_each_other() {
        assert_eq!(
            parse_line("ATE0V1").unwrap(),
            vec![basic("E", "0"), basic("V", "1")]
        );
        assert_eq!(parse_line("at&f").unwrap(), vec![basic("&F", "")]);
        assert_eq!(parse_line("ATS0=2").unwrap(), vec![basic("S0", "=2")]);
        assert_eq!(parse_line("ATI").unwrap(), vec![basic("I", "")]);
    }

    #[test]
    fn mixed_basic_and_extended() {
        assert_eq!(
            parse_line("ATE0+CMEE=2;+CMGF=0").unwrap(),
            vec![
                basic("E", "0"),
                ext("+CMEE", Op::Set("2".into())),
                ext("+CMGF", Op::Set("0".into()))
            ]
        );
    }

    #[test]
    fn read_test_and_exec_forms() {
        assert_eq!(
            parse_line("AT+CREG?").unwrap(),
            vec![ext("+CREG", Op::Read)]
        );
        assert_eq!(
            parse_line("AT+CSCS=?").unwrap(),
            vec![ext("+CSCS", Op::Test)]
        );
        assert_eq!(parse_line("AT+cgmi").unwrap(), vec![ext("+CGMI", Op::Exec)]);
        assert_eq!(parse_line("AT").unwrap(), vec![]);
    }

    #[test]
    fn quoted_semicolons_and_spaces_stay_in_arguments() {
        assert_eq!(
            parse_line("AT+CTTS=2,\"one; two\";+CMEE=1").unwrap(),
            vec![
                ext("+CTTS", Op::Set("2,\"one; two\"".into())),
                ext("+CMEE", Op::Set("1".into()))
            ]
        );
        assert_eq!(
            parse_line("AT + CMGF = 1").unwrap(),
            vec![ext("+CMGF", Op::Set("1".into()))]
        );
    }

    #[test]
    fn dial_takes_the_rest_of_the_line() {
        assert_eq!(
            parse_line("ATD+4915112345678;").unwrap(),
            vec![Command::Dial {
                number: "+4915112345678".into(),
                voice: true
            }]
        );
        assert_eq!(
            parse_line("ATD123").unwrap(),
            vec![Command::Dial {
                number: "123".into(),
                voice: false
            }]
        );
    }

    #[test]
    fn bad_lines_are_rejected() {
        assert_eq!(parse_line("HELLO"), Err(LineError::NoPrefix));
        assert_eq!(parse_line("AT+CSCA=\"+49"), Err(LineError::UnclosedQuote));
        assert!(matches!(parse_line("AT!"), Err(LineError::Unexpected(0))));
    }

    #[test]
    fn arguments_split_at_commas_outside_quotes() {
        assert_eq!(
            split_args("\"SM\",\"ME\",,3"),
            vec![
                Some(Arg::Str("SM".into())),
                Some(Arg::Str("ME".into())),
                None,
                Some(Arg::Raw("3".into()))
            ]
        );
        assert_eq!(split_args("2,\"a,b\"")[1], Some(Arg::Str("a,b".into())));
        assert!(split_args("").is_empty());
        assert_eq!(split_args("1")[0].as_ref().and_then(Arg::number), Some(1));
    }
}
