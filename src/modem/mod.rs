//! The modem: the one paging path that works when everything else is down.
//!
//! - [`at`]: pure AT line classification (final results, prompts, URCs, error codes).
//! - [`pdu`]: pure SMS PDU codec (GSM 7-bit, UCS-2, concatenation, status reports).
//! - [`sim`]: a modem simulator that speaks AT on a pseudo-terminal.

pub mod at;
pub mod engine;
pub mod fake;
pub mod pdu;
pub mod port;
pub mod sim;
