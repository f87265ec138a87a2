//! Notify: the durable outbox's senders, SMS -> voice -> email fallback, and what pages say.

pub mod text;
