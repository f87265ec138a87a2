//! Notify: the durable outbox's senders, SMS -> voice -> email fallback, and what pages say.

pub mod email;
pub mod sender;
pub mod smtp_test_server;
pub mod text;
pub mod transport;
