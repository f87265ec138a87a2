//! Fuzz target: the AT line decoder and classifiers must never panic or grow without bound,
//! whatever bytes arrive from the port (noise after a reset, a baud mismatch, a broken modem).
//!
//! Properties checked: the decoder's buffer stays within its limit; lines carry no control
//! bytes; feeding the input in one chunk or byte by byte gives the same frames; every line
//! goes through classification, URC parsing and the response parsers without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagerbox::modem::at::response::{
    parse_clcc, parse_cmgl_index, parse_cmgs, parse_cops, parse_cpin, parse_csq,
    parse_registration,
};
use pagerbox::modem::at::{classify, parse_urc, response_prefix, Frame, LineDecoder};

const LIMIT: usize = 64;

fn frames(d: &mut LineDecoder) -> Vec<Frame> {
    std::iter::from_fn(|| d.next_frame()).collect()
}

fuzz_target!(|data: &[u8]| {
    let mut whole = LineDecoder::new(LIMIT);
    whole.push(data);
    assert!(whole.pending_len() <= LIMIT);
    let all = frames(&mut whole);

    let mut bytewise = LineDecoder::new(LIMIT);
    let mut one_by_one = Vec::new();
    for b in data {
        bytewise.push(std::slice::from_ref(b));
        assert!(bytewise.pending_len() <= LIMIT);
        one_by_one.extend(frames(&mut bytewise));
    }
    assert_eq!(all, one_by_one);

    for frame in &all {
        let Frame::Line(line) = frame else { continue };
        assert!(!line.is_empty());
        assert!(!line.chars().any(|c| c == '\r' || c == '\n' || c == '\0'));
        let _ = classify(line);
        let _ = parse_urc(line);
        let _ = response_prefix(line);
        let _ = parse_csq(line);
        let _ = parse_registration(line, true);
        let _ = parse_registration(line, false);
        let _ = parse_cpin(line);
        let _ = parse_cops(line);
        let _ = parse_cmgs(line);
        let _ = parse_cmgl_index(line);
        let _ = parse_clcc(line);
    }

    // With a prompt expected, a lone '>' must still never panic or overflow.
    let mut prompt = LineDecoder::new(LIMIT);
    prompt.set_prompt_expected(true);
    prompt.push(data);
    assert!(prompt.pending_len() <= LIMIT);
    let _ = frames(&mut prompt);
});
