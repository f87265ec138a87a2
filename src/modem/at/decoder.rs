//! Bytes from the port -> frames (lines and the `> ` prompt), with a bounded buffer.
//!
//! Real modems send `\r\n` around every line, echo commands ending in a bare `\r`, emit NULs
//! and noise after a reset or a baud mismatch, and send the SMS prompt `> ` with no line end.
//! [`LineDecoder`] turns whatever arrives into [`Frame`]s without ever growing beyond its limit:
//! a line longer than the limit is dropped and reported once as [`Frame::Overlong`].
//!
//! Pure: no I/O, no clock, no logging. "Need more bytes" is `None` from
//! [`LineDecoder::next_frame`], never an error.

use std::collections::VecDeque;

/// Default longest line kept. A `+CMGL`/`+CMGR` PDU line is at most 2 * (12 + 164) = 352 hex
/// characters, so 1024 leaves room for vendor extras and text-mode bodies.
pub const DEFAULT_MAX_LINE: usize = 1024;

/// One unit decoded from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A non-empty line, trimmed of surrounding whitespace, with control bytes removed.
    Line(String),
    /// The `> ` prompt that asks for the PDU (or text) of `AT+CMGS`.
    Prompt,
    /// A line longer than the limit was dropped; `dropped` bytes were discarded.
    Overlong {
        /// How many bytes of the line were thrown away.
        dropped: usize,
    },
}

/// A bounded line decoder.
///
/// Invariant: the internal buffer never holds more than `max_line` bytes.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max_line: usize,
    /// Bytes discarded from the current overlong line, `None` while the line fits.
    discarding: Option<usize>,
    frames: VecDeque<Frame>,
    prompt_expected: bool,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder that keeps lines of at most `max_line` bytes (at least 16).
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::with_capacity(128),
            max_line: max_line.max(16),
            discarding: None,
            frames: VecDeque::new(),
            prompt_expected: false,
        }
    }

    /// Tells the decoder an `AT+CMGS` is waiting for its prompt, so a lone `>` at the start of a
    /// line counts as the prompt even before its trailing space arrives.
    pub fn set_prompt_expected(&mut self, expected: bool) {
        self.prompt_expected = expected;
        if expected {
            self.check_prompt();
        }
    }

    /// Forgets any partial line and queued frames (used after a port is reopened).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = None;
        self.frames.clear();
    }

    /// Feeds bytes read from the port.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.push_byte(b);
        }
    }

    /// The next decoded frame, or `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        self.frames.pop_front()
    }

    /// How many bytes of an unfinished line are held (for tests and fuzz targets of the bound).
    #[cfg(any(test, feature = "testkit"))]
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    fn push_byte(&mut self, b: u8) {
        match b {
            // CR, LF, and Ctrl-Z / ESC (seen in PDU echoes) all end a line.
            b'\r' | b'\n' | 0x1a | 0x1b => self.end_line(),
            // NUL, other C0 controls and DEL are noise.
            0x00..=0x1f | 0x7f => {}
            _ => {
                if let Some(dropped) = self.discarding.as_mut() {
                    *dropped += 1;
                    return;
                }
                if self.buf.len() >= self.max_line {
                    self.discarding = Some(self.buf.len() + 1);
                    self.buf.clear();
                    return;
                }
                self.buf.push(b);
                self.check_prompt();
            }
        }
    }

    /// Emits a prompt if the buffered line start is `> ` (or `>` while a prompt is expected).
    fn check_prompt(&mut self) {
        let start = self.buf.iter().position(|&c| c != b' ' && c != b'\t');
        let Some(start) = start else { return };
        let rest = &self.buf[start..];
        let is_prompt = rest == b"> " || (rest == b">" && self.prompt_expected);
        if is_prompt {
            self.buf.clear();
            self.frames.push_back(Frame::Prompt);
            self.prompt_expected = false;
        }
    }

    fn end_line(&mut self) {
        if let Some(dropped) = self.discarding.take() {
            self.frames.push_back(Frame::Overlong { dropped });
            self.buf.clear();
            return;
        }
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let trimmed = text.trim();
        if !trimmed.is_empty() {
            self.frames.push_back(Frame::Line(trimmed.to_string()));
        }
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut LineDecoder) -> Vec<Frame> {
        std::iter::from_fn(|| d.next_frame()).collect()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(s.to_string())
    }

    #[test]
    fn splits_crlf_lines_and_skips_empty_ones() {
        let mut d = LineDecoder::default();
        d.push(b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n");
        assert_eq!(frames(&mut d), vec![line("+CSQ: 17,99"), line("OK")]);
    }

    #[test]
    fn accepts_lf_only_cr_only_and_lfcr() {
        let mut d = LineDecoder::default();
        d.push(b"A\nB\rC\n\rD\r\n");
        assert_eq!(
            frames(&mut d),
            vec![line("A"), line("B"), line("C"), line("D")]
        );
    }

    #[test]
    fn partial_line_waits_for_more_bytes() {
        let mut d = LineDecoder::default();
        d.push(b"\r\n+CMTI: \"SM\",");
        assert_eq!(frames(&mut d), vec![]);
        d.push(b"3\r\n");
        assert_eq!(frames(&mut d), vec![line("+CMTI: \"SM\",3")]);
    }

    #[test]
    fn echo_with_bare_cr_is_a_line() {
        let mut d = LineDecoder::default();
        d.push(b"AT+CSQ\r\r\n+CSQ: 20,0\r\n\r\nOK\r\n");
        assert_eq!(
            frames(&mut d),
            vec![line("AT+CSQ"), line("+CSQ: 20,0"), line("OK")]
        );
    }

    #[test]
    fn nuls_and_junk_controls_are_removed() {
        let mut d = LineDecoder::default();
        d.push(b"\x00\x00\xff\r\nO\x00K\x07\r\n");
        // 0xff is not valid UTF-8 and comes through as a replacement character line.
        let got = frames(&mut d);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], line("OK"));
    }

    #[test]
    fn prompt_without_newline() {
        let mut d = LineDecoder::default();
        d.push(b"AT+CMGS=23\r\r\n> ");
        assert_eq!(frames(&mut d), vec![line("AT+CMGS=23"), Frame::Prompt]);
    }

    #[test]
    fn lone_gt_is_a_prompt_only_when_expected() {
        let mut d = LineDecoder::default();
        d.push(b"\r\n>");
        assert_eq!(frames(&mut d), vec![]);
        d.set_prompt_expected(true);
        assert_eq!(frames(&mut d), vec![Frame::Prompt]);
        // The trailing space alone makes no line.
        d.push(b" \r\n");
        assert_eq!(frames(&mut d), vec![]);
    }

    #[test]
    fn gt_inside_a_line_is_not_a_prompt() {
        let mut d = LineDecoder::default();
        d.push(b"a> b\r\n");
        assert_eq!(frames(&mut d), vec![line("a> b")]);
    }

    #[test]
    fn pdu_echo_ending_in_ctrl_z_is_a_line() {
        let mut d = LineDecoder::default();
        d.push(b"0011000B91\x1a\r\n+CMGS: 7\r\n\r\nOK\r\n");
        assert_eq!(
            frames(&mut d),
            vec![line("0011000B91"), line("+CMGS: 7"), line("OK")]
        );
    }

    #[test]
    fn overlong_line_is_dropped_and_reported_once_and_buffer_stays_bounded() {
        let mut d = LineDecoder::new(32);
        let junk = vec![b'x'; 10_000];
        d.push(&junk);
        assert!(d.pending_len() <= 32);
        d.push(b"\r\nOK\r\n");
        assert_eq!(
            frames(&mut d),
            vec![Frame::Overlong { dropped: 10_000 }, line("OK")]
        );
    }

    #[test]
    fn line_of_exactly_the_limit_is_kept() {
        let mut d = LineDecoder::new(16);
        d.push(b"0123456789abcdef\r\n");
        assert_eq!(frames(&mut d), vec![line("0123456789abcdef")]);
    }

    #[test]
    fn clear_forgets_partial_input() {
        let mut d = LineDecoder::default();
        d.push(b"stale OK");
        d.clear();
        d.push(b"\r\nOK\r\n");
        assert_eq!(frames(&mut d), vec![line("OK")]);
    }
}
