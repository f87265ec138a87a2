//! The modem: the one paging path that works when everything else is down.
//!
//! - [`driver`]: [`Modem`], the handle the daemon uses, and the task that owns the port
//!   (bring-up, health, reopen, SMS send/receive, delivery reports, voice calls).
//! - [`engine`]: runs one AT command at a time over any byte stream; separates URCs.
//! - [`at`]: pure AT line classification (final results, prompts, URCs, error codes).
//! - [`pdu`]: pure SMS PDU codec (GSM 7-bit, UCS-2, concatenation, status reports).
//! - [`profile`]: what differs between generic, SIM800, SIM7600 and EC25 modems.
//! - [`port`]: opening (and reopening) the serial port behind a narrow trait.
//! - `fake`: a scripted fake modem for tests (test builds only: `cfg(test)` or the `testkit`
//!   feature).
//! - [`cli`]: `pagerbox modem status/sms/call` for bench tests.
//! - [`sim`]: a modem simulator that speaks AT on a pseudo-terminal.

pub mod at;
pub mod cli;
pub mod driver;
pub mod engine;
#[cfg(any(test, feature = "testkit"))]
pub mod fake;
pub mod pdu;
pub mod port;
pub mod profile;
pub mod sim;

pub use driver::{
    CallOptions, CallOutcome, Health, HealthState, Modem, ModemError, ModemEvent, ModemStatus, Pin,
    Registration, Settings, SmsReceipt,
};
pub use profile::{Profile, ProfileChoice};
