//! Test doubles for pagerbox that need nothing from pagerbox itself.
//!
//! | module   | what it stands in for                                                     |
//! |----------|---------------------------------------------------------------------------|
//! | [`smtp`] | an SMTP submission server: STARTTLS or implicit TLS, AUTH, injected faults |
//!
//! The crate is a dev-dependency only: the daemon never links it. Fakes of pagerbox's own traits
//! (the scripted modem, the recording GPIO panel) live beside those traits in the library, under
//! `#[cfg(any(test, feature = "testkit"))]`, because a crate pagerbox depends on cannot implement
//! pagerbox's traits.

pub mod smtp;
