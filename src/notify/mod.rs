//! Notify: the durable outbox's senders, SMS -> voice -> email fallback, and what pages say.

use crate::config::Config;
use crate::incident::Channel;

pub mod email;
pub mod modem_events;
pub mod paging_health;
pub mod sender;
pub mod text;
pub mod transport;

/// The paging channels a transport serves under `config`: SMS and voice with a modem, email
/// when it is enabled. The escalation engine queues pages only on these, so a channel that is
/// off queues nothing (the daemon builds one transport per channel from the same settings).
pub fn served_channels(config: &Config) -> Vec<Channel> {
    Channel::ALL
        .into_iter()
        .filter(|c| match c {
            Channel::Sms | Channel::Voice => config.modem.enabled,
            Channel::Email => config.email.enabled,
        })
        .collect()
}
