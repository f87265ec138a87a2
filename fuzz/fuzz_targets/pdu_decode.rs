//! Fuzz target: the PDU decoders must never panic, whatever the modem or a peer sends.
//!
//! The input is used three ways: as raw octets, as text (hex as it arrives from the modem,
//! garbage included), and as octets re-encoded to valid hex so the decoders see well-formed
//! hex of arbitrary content. Each goes through both directions, with and without an SMSC
//! field, and through the AT+CMGS length split the simulator uses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pagerbox::modem::pdu::{decode, decode_bytes, decode_with_tpdu_len, split_smsc, Direction};

const DIRECTIONS: [Direction; 2] = [Direction::MobileTerminated, Direction::MobileOriginated];

fuzz_target!(|data: &[u8]| {
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    for direction in DIRECTIONS {
        for has_smsc in [true, false] {
            let _ = decode_bytes(data, direction, has_smsc);
            let _ = decode(&hex, direction, has_smsc);
        }
        // The first octet picks an AT+CMGS length so both split outcomes are reached.
        if let Some((&len, rest)) = data.split_first() {
            let rest_hex: String = rest.iter().map(|b| format!("{b:02X}")).collect();
            let _ = decode_with_tpdu_len(&rest_hex, direction, usize::from(len));
            let _ = split_smsc(&rest_hex, usize::from(len));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        for direction in DIRECTIONS {
            let _ = decode(text, direction, true);
        }
        let _ = split_smsc(text, text.len() / 2);
    }
});
