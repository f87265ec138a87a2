//! The SMS command language, as a pure parser: text in, [`Command`] out. No I/O, no clock, no
//! logs, so every form people type on a phone at 3 a.m. can be pinned down by a table of vectors.
//!
//! What does not matter: case, surrounding and repeated spaces, one trailing punctuation mark
//! (`.`, `!`, `,`, or `?` where `42?` is not meant), and a `#` before an incident number. What
//! does: the text of a note and of a `PAGE` summary is kept exactly as typed (case, accents,
//! emoji), apart from the spaces around it.

use std::time::Duration;

use crate::incident::IncidentId;

/// Longest `TAKE` accepted: a typo such as `TAKE 200d` should not hand someone the pager for
/// half a year.
pub const MAX_TAKE: Duration = Duration::from_secs(31 * 24 * 3600);

/// Which incident an acknowledge or resolve is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The incident with this number (`42a`).
    Incident(IncidentId),
    /// The incident (or digest of incidents) most recently paged to the sender (`ACK` alone).
    LastPaged,
}

/// One command from an SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `42a`, `42 a`, `ack 42`, `a42`, `ACK`.
    Acknowledge(Target),
    /// `42r`, `res 42`, `resolve 42`, `r42`, `RES`.
    Resolve(Target),
    /// `42e`, `esc 42`: the pending escalation step fires now.
    Escalate(IncidentId),
    /// `42 n <text>`, `42 note <text>`: a note on the timeline, text verbatim.
    Note { incident: IncidentId, text: String },
    /// `42?`: details and the route's runbook.
    Details(IncidentId),
    /// `ONCALL`: who is on call now, per schedule.
    OnCall,
    /// `STATUS`: open incidents and who owns each.
    Status,
    /// `TAKE [duration]`: the sender takes the pager; `None` = until the next handoff.
    Take(Option<Duration>),
    /// `PAGE <service> <summary...>`: raise an incident by SMS.
    Page { service: String, summary: String },
    /// `HELP`.
    Help,
}

/// Why a text is not a command. `Display` is written to be sent back to the sender as is, so it
/// is short, quotes (a cut of) what was not understood, and says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but spaces and punctuation.
    #[error("empty message. Send HELP")]
    Empty,
    /// Not any known form; keeps the input as received.
    #[error("not understood: \"{}\". Send HELP", cut(.input, 40))]
    NotUnderstood { input: String },
    /// An incident number too large to be one.
    #[error("#{} is not an incident number. Send HELP", cut(.input, 20))]
    BadNumber { input: String },
    /// `TAKE` with something that is not a duration, zero, or more than [`MAX_TAKE`].
    #[error("bad duration \"{}\": {reason}. Send e.g. TAKE 2h", cut(.input, 20))]
    BadDuration { input: String, reason: String },
    /// `42 n` with no text.
    #[error("#{incident} note is empty: send {incident} n <text>")]
    EmptyNote { incident: IncidentId },
    /// `PAGE` without both a service and a summary.
    #[error("PAGE needs a service and a summary, e.g. PAGE db disk full")]
    PageIncomplete,
}

/// The first `n` characters of `s`, with `...` when cut (for quoting input in a reply).
fn cut(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(n).collect::<String>())
    }
}

/// What a word means when it stands before or after an incident number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Ack,
    Resolve,
    Escalate,
    Details,
}

fn verb(word: &str) -> Option<Verb> {
    Some(match word {
        "a" | "ack" | "acknowledge" | "ok" => Verb::Ack,
        "r" | "res" | "resolve" | "resolved" => Verb::Resolve,
        "e" | "esc" | "escalate" => Verb::Escalate,
        "?" | "info" | "details" => Verb::Details,
        _ => return None,
    })
}

/// An incident number: digits with an optional leading `#`. `Some(Err)` for digits that
/// overflow, `None` for anything that is not digits at all.
fn number(word: &str) -> Option<Result<IncidentId, ParseError>> {
    let digits = word.strip_prefix('#').unwrap_or(word);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(
        digits
            .parse::<IncidentId>()
            .map_err(|_| ParseError::BadNumber {
                input: digits.to_string(),
            }),
    )
}

/// Splits one word into a number and a verb glued together: `42a`, `#42r`, `a42`, `42?`.
fn glued(word: &str) -> Option<(Result<IncidentId, ParseError>, Verb)> {
    let body = word.strip_prefix('#').unwrap_or(word);
    let lead = body.chars().take_while(|c| c.is_ascii_digit()).count();
    if lead > 0 {
        let (n, v) = body.split_at(lead);
        return Some((number(n)?, verb(v)?));
    }
    let trail = body
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if trail > 0 {
        let (v, n) = body.split_at(body.len() - trail);
        return Some((number(n)?, verb(v)?));
    }
    None
}

fn with_target(v: Verb, target: Target) -> Result<Command, ParseError> {
    Ok(match (v, target) {
        (Verb::Ack, t) => Command::Acknowledge(t),
        (Verb::Resolve, t) => Command::Resolve(t),
        (Verb::Escalate, Target::Incident(id)) => Command::Escalate(id),
        (Verb::Details, Target::Incident(id)) => Command::Details(id),
        // `ESC` or `?` alone would need a "last paged" too; ask for the number instead.
        (Verb::Escalate | Verb::Details, Target::LastPaged) => {
            return Err(ParseError::NotUnderstood {
                input: String::new(),
            })
        }
    })
}

/// Parses one SMS into a command.
///
/// Pure and total: any text gives a command or a [`ParseError`] whose message can be sent back.
///
/// A text of several lines that is not a command as a whole is read by its first non-empty line,
/// so a signature (`Sent from my phone`) or a quoted page below the command does not matter;
/// notes and `PAGE` keep all their lines.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let whole = parse_one(text);
    if let Err(ParseError::NotUnderstood { .. }) = &whole {
        if let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
            if first != text.trim() {
                if let Ok(cmd) = parse_one(first) {
                    return Ok(cmd);
                }
            }
        }
    }
    whole
}

fn parse_one(text: &str) -> Result<Command, ParseError> {
    let trimmed = text.trim();
    let not_understood = || ParseError::NotUnderstood {
        input: trimmed.to_string(),
    };
    let words: Vec<&str> = trimmed.split_whitespace().collect();
    let Some(first) = words.first() else {
        return Err(ParseError::Empty);
    };
    let first_lower = first.to_lowercase();
    if trimmed == "?" {
        return Ok(Command::Help);
    }

    // Forms whose tail is free text come first, before any punctuation is taken off it.
    if first_lower == "page" {
        return match (words.get(1), rest_after(trimmed, 2)) {
            (Some(service), Some(summary)) => Ok(Command::Page {
                service: (*service).to_string(),
                summary: summary.to_string(),
            }),
            _ => Err(ParseError::PageIncomplete),
        };
    }
    if let Some(note) = note(trimmed, &words) {
        return note;
    }

    // `42?` (and `42 ?`) is the details command, not `42` with a trailing question mark.
    let mut body = trimmed;
    if let Some(before) = body.strip_suffix('?') {
        if let Some(n) = number(before.trim_end()) {
            return Ok(Command::Details(n?));
        }
    }
    if let Some(stripped) = body.strip_suffix(['.', '!', ',', '?']) {
        body = stripped.trim_end();
    }
    let lower = body.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let whole = by_words(&words, not_understood);
    // `16a on it`, `16r fixed, was the disk`: an ack or resolve of a numbered incident glued
    // into one word is taken as that, whatever follows (people add a word or two, and an ack
    // that was "not understood" would leave the escalation running while the person thinks it
    // stopped). Only with the number first (a bare `ok` or `ack` followed by words may be a
    // sentence), never an escalation (`2e keer` is Dutch for "the 2nd time", and an escalation
    // wakes someone else), and not when a later word is a command too (`16a 17a`: one command
    // per text, so the second is not dropped unseen).
    if let (Err(ParseError::NotUnderstood { .. }), [first, rest @ ..]) = (&whole, words.as_slice())
    {
        let numbered = |w: &str| {
            w.trim_start_matches('#')
                .starts_with(|c: char| c.is_ascii_digit())
                && glued(w).is_some()
        };
        if let (true, false, Some((n, v @ (Verb::Ack | Verb::Resolve)))) = (
            numbered(first),
            rest.is_empty() || rest.iter().any(|w| numbered(w)),
            glued(first),
        ) {
            return with_target(v, Target::Incident(n?));
        }
    }
    whole
}

/// A command from its lowercased words.
fn by_words(
    words: &[&str],
    not_understood: impl Fn() -> ParseError,
) -> Result<Command, ParseError> {
    match words {
        [] => Err(ParseError::Empty),
        ["oncall" | "on-call" | "who"] | ["on", "call"] => Ok(Command::OnCall),
        ["status" | "st" | "list"] => Ok(Command::Status),
        ["help" | "h" | "?" | "commands"] => Ok(Command::Help),
        ["take"] => Ok(Command::Take(None)),
        ["take", rest @ ..] => {
            let input = rest.concat();
            take_duration(&input).map(|d| Command::Take(Some(d)))
        }
        [one] => {
            if let Some(v) = verb(one) {
                return with_target(v, Target::LastPaged).map_err(|_| not_understood());
            }
            match glued(one) {
                Some((n, v)) => with_target(v, Target::Incident(n?)),
                None => Err(not_understood()),
            }
        }
        [a, b] => {
            let (n, v) = match (number(a), number(b)) {
                (Some(n), None) => (n, verb(b)),
                (None, Some(n)) => (n, verb(a)),
                _ => return Err(not_understood()),
            };
            match v {
                Some(v) => with_target(v, Target::Incident(n?)),
                None => Err(not_understood()),
            }
        }
        _ => Err(not_understood()),
    }
}

/// The text after the first `skip` words of `s`, verbatim, or `None` when there is none.
fn rest_after(s: &str, skip: usize) -> Option<&str> {
    let mut rest = s.trim_start();
    for _ in 0..skip {
        let end = rest.find(char::is_whitespace)?;
        rest = rest[end..].trim_start();
    }
    let rest = rest.trim_end();
    (!rest.is_empty()).then_some(rest)
}

/// `42 n text`, `#42 note text`, `42n text`, `note 42 text`: the note command, text verbatim.
fn note(trimmed: &str, words: &[&str]) -> Option<Result<Command, ParseError>> {
    let is_note = |w: &str| matches!(w.to_lowercase().as_str(), "n" | "note");
    let (id, skip) = match words {
        [a, b, ..] if is_note(b) => (number(a)?, 2),
        [a, b, ..] if is_note(a) => (number(b)?, 2),
        [a, ..] => {
            // Glued: `42n` or `42note`.
            let body = a.strip_prefix('#').unwrap_or(a);
            let lead = body.chars().take_while(|c| c.is_ascii_digit()).count();
            if lead == 0 || !is_note(&body[lead..]) {
                return None;
            }
            (number(&body[..lead])?, 1)
        }
        _ => return None,
    };
    let id = match id {
        Ok(id) => id,
        Err(e) => return Some(Err(e)),
    };
    Some(match rest_after(trimmed, skip) {
        Some(text) => Ok(Command::Note {
            incident: id,
            text: text.to_string(),
        }),
        None => Err(ParseError::EmptyNote { incident: id }),
    })
}

fn take_duration(input: &str) -> Result<Duration, ParseError> {
    let bad = |reason: &str| ParseError::BadDuration {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    // A bare number means hours: "TAKE 2" is what people type.
    let parsed = if input.chars().all(|c| c.is_ascii_digit()) {
        input
            .parse::<u64>()
            .ok()
            .and_then(|h| h.checked_mul(3600))
            .map(Duration::from_secs)
            .ok_or_else(|| bad("too long"))?
    } else {
        humantime::parse_duration(input).map_err(|_| bad("not a duration"))?
    };
    // Shorter than a minute is a typo (`TAKE 1s`, `TAKE 1ns`), and a span under a millisecond
    // would be empty as stored.
    if parsed < Duration::from_secs(60) {
        return Err(bad("at least 1m"));
    }
    if parsed > MAX_TAKE {
        return Err(bad("at most 31d"));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: IncidentId) -> Command {
        Command::Acknowledge(Target::Incident(id))
    }
    fn res(id: IncidentId) -> Command {
        Command::Resolve(Target::Incident(id))
    }

    #[test]
    fn acknowledge_forms() {
        for text in [
            "42a",
            "42 a",
            "42 ack",
            "ack 42",
            "a42",
            "a 42",
            "#42a",
            "#42 a",
            "ack #42",
            "42A",
            "ACK 42",
            "  42a  ",
            "42a.",
            "42a!",
            "42a,",
            "42a?",
            "Ack 42.",
            "42  ACK",
            "42ack",
            "ack42",
            "42 acknowledge",
            "42ok",
        ] {
            assert_eq!(parse(text), Ok(ack(42)), "{text:?}");
        }
    }

    #[test]
    fn acknowledge_alone_is_the_last_paged_incident() {
        for text in ["ACK", "ack", "a", "A", "Ack.", " ack! ", "ok"] {
            assert_eq!(
                parse(text),
                Ok(Command::Acknowledge(Target::LastPaged)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn resolve_forms() {
        for text in [
            "42r",
            "42 r",
            "42 res",
            "42 resolve",
            "resolve 42",
            "res 42",
            "r42",
            "r 42",
            "#42r",
            "42R.",
            "RESOLVE #42!",
            "42resolved",
        ] {
            assert_eq!(parse(text), Ok(res(42)), "{text:?}");
        }
        for text in ["RES", "res", "r", "resolve.", "R"] {
            assert_eq!(
                parse(text),
                Ok(Command::Resolve(Target::LastPaged)),
                "{text:?}"
            );
        }
    }

    #[test]
    fn escalate_details_and_simple_commands() {
        let cases: &[(&str, Command)] = &[
            ("42e", Command::Escalate(42)),
            ("esc 42", Command::Escalate(42)),
            ("ESC #42.", Command::Escalate(42)),
            ("42 escalate", Command::Escalate(42)),
            ("e42", Command::Escalate(42)),
            ("42?", Command::Details(42)),
            ("#42?", Command::Details(42)),
            ("42 ?", Command::Details(42)),
            ("42??", Command::Details(42)),
            ("42 info", Command::Details(42)),
            ("ONCALL", Command::OnCall),
            ("oncall?", Command::OnCall),
            ("on call", Command::OnCall),
            ("Who", Command::OnCall),
            ("STATUS", Command::Status),
            ("status.", Command::Status),
            ("HELP", Command::Help),
            ("help?", Command::Help),
            ("?", Command::Help),
            ("TAKE", Command::Take(None)),
            ("take!", Command::Take(None)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Ok(want), "{text:?}");
        }
    }

    #[test]
    fn a_numbered_command_may_be_followed_by_words() {
        let cases: &[(&str, Command)] = &[
            ("16a on it", Command::Acknowledge(Target::Incident(16))),
            ("16A On it!", Command::Acknowledge(Target::Incident(16))),
            (
                "#16r fixed, was the disk",
                Command::Resolve(Target::Incident(16)),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).as_ref(), Ok(want), "{text:?}");
        }
        // Not without the number first, nor for what only asks.
        for text in [
            "ok thanks",
            "ack soon",
            "a1 is down",
            "42 a lot of errors",
            "16? more",
            "2e keer vandaag",
            "16a 17a",
            "16a and #17r",
        ] {
            assert!(
                matches!(parse(text), Err(ParseError::NotUnderstood { .. })),
                "{text:?}: {:?}",
                parse(text)
            );
        }
    }

    #[test]
    fn take_with_a_duration() {
        let h = |n: u64| Some(Duration::from_secs(n * 3600));
        let cases: &[(&str, Option<Duration>)] = &[
            ("TAKE 2h", h(2)),
            ("take 90m", Some(Duration::from_secs(90 * 60))),
            ("take 1m", Some(Duration::from_secs(60))),
            ("Take 1d", h(24)),
            ("take 1h30m", Some(Duration::from_secs(90 * 60))),
            ("take 2 h", h(2)),
            ("take 3", h(3)),
            ("TAKE 12H.", h(12)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(Command::Take(*want)), "{text:?}");
        }
        for text in [
            "take soon",
            "take 0m",
            "take 1ns",
            "take 59s",
            "take 40d",
            "take 99999999999999999999",
        ] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, ParseError::BadDuration { .. }), "{text:?}");
            assert!(err.to_string().contains("TAKE 2h"), "{err}");
        }
    }

    #[test]
    fn notes_keep_their_text_verbatim() {
        let cases: &[(&str, IncidentId, &str)] = &[
            (
                "42 n Restarted DB, watching.",
                42,
                "Restarted DB, watching.",
            ),
            ("42 note  looking into it ", 42, "looking into it"),
            (
                "#7 N Größe prüfen – später 🚒",
                7,
                "Größe prüfen – später 🚒",
            ),
            ("42n on my way?", 42, "on my way?"),
            ("note 42 Disk replaced!", 42, "Disk replaced!"),
            ("42 NOTE ACK later", 42, "ACK later"),
        ];
        for (text, id, body) in cases {
            assert_eq!(
                parse(text),
                Ok(Command::Note {
                    incident: *id,
                    text: (*body).to_string()
                }),
                "{text:?}"
            );
        }
        assert_eq!(parse("42 n"), Err(ParseError::EmptyNote { incident: 42 }));
        assert_eq!(
            parse("42 note   "),
            Err(ParseError::EmptyNote { incident: 42 })
        );
    }

    #[test]
    fn page_keeps_service_and_summary() {
        assert_eq!(
            parse("PAGE db Replica lag > 5 min!"),
            Ok(Command::Page {
                service: "db".into(),
                summary: "Replica lag > 5 min!".into()
            })
        );
        assert_eq!(
            parse("page Web Ünïcode summary"),
            Ok(Command::Page {
                service: "Web".into(),
                summary: "Ünïcode summary".into()
            })
        );
        assert_eq!(parse("PAGE db"), Err(ParseError::PageIncomplete));
        assert_eq!(parse("page"), Err(ParseError::PageIncomplete));
    }

    #[test]
    fn non_ascii_spaces_and_phone_keyboards() {
        // Phones that send UCS-2 often use no-break spaces; they are spaces.
        assert_eq!(parse("42\u{a0}a"), Ok(ack(42)));
        assert_eq!(parse("\u{3000}ack 42\u{3000}"), Ok(ack(42)));
        // Full-width digits are not incident numbers (documented: not supported).
        assert!(parse("４２a").is_err());
    }

    proptest::proptest! {
        /// Any text at all gives a command or an error with something to say; never a panic.
        #[test]
        fn parse_is_total(text in "\\PC{0,60}") {
            if let Err(e) = parse(&text) {
                proptest::prop_assert!(!e.to_string().is_empty());
            }
        }

        /// Every `<id><verb>` spelling acknowledges that id.
        #[test]
        fn any_id_acknowledges(id in 0i64..=i64::MAX, hash in proptest::bool::ANY, sep in " {0,2}") {
            let text = format!("{}{id}{sep}ACK", if hash { "#" } else { "" });
            proptest::prop_assert_eq!(parse(&text), Ok(ack(id)));
        }
    }

    #[test]
    fn a_signature_or_quoted_page_below_the_command_does_not_matter() {
        assert_eq!(parse("42a\n\nSent from my iPhone"), Ok(ack(42)));
        assert_eq!(
            parse("\n ack 42 \r\n> #42 CRIT db: down. Reply 42a ack"),
            Ok(ack(42))
        );
        assert_eq!(
            parse("42 n first line\nsecond line"),
            Ok(Command::Note {
                incident: 42,
                text: "first line\nsecond line".into()
            })
        );
        assert_eq!(
            parse("hello\n42a"),
            Err(ParseError::NotUnderstood {
                input: "hello\n42a".into()
            })
        );
    }

    #[test]
    fn errors_say_what_was_not_understood() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("   "), Err(ParseError::Empty));
        assert_eq!(parse("."), Err(ParseError::Empty));
        for text in [
            "hello",
            "42",
            "42x",
            "ack 42 43",
            "42 a b",
            "esc",
            "x42",
            "ackk 42",
            "42a..",
            "thanks, on it",
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(
                err,
                ParseError::NotUnderstood {
                    input: text.trim().to_string()
                },
                "{text:?}"
            );
            assert!(err.to_string().starts_with("not understood: \""), "{err}");
            assert!(err.to_string().ends_with("Send HELP"), "{err}");
        }
        let long = "x".repeat(200);
        let msg = parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 80, "{msg}");
        assert!(matches!(
            parse("99999999999999999999999a"),
            Err(ParseError::BadNumber { .. })
        ));
    }
}
