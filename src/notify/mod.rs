//! Notify: the durable outbox's senders, SMS -> voice -> email fallback, and what pages say.

pub mod email;
pub mod paging_health;
pub mod sender;
pub mod text;
pub mod transport;
