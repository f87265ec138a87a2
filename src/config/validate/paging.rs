//! `[paging]` -> [`PagingConfig`]: channels, retries and limits for pages.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn channel(&mut self, s: &S<String>, key: &str) -> Option<Channel> {
        match Channel::from_str(s.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                self.r.error(span(s), format!("{key}: {e}"));
                None
            }
        }
    }

    pub(super) fn paging(&mut self, raw: &RawPaging) -> PagingConfig {
        /// Long enough for a modem to boot and register after a restart.
        const DEFAULT_CHANNEL_START_WAIT: Duration = Duration::from_secs(60);
        /// Past this, a page waiting for a channel that is not coming is a page not sent.
        const MAX_CHANNEL_START_WAIT: Duration = Duration::from_secs(600);
        let channels = match &raw.channels {
            None => vec![Channel::Sms, Channel::Voice, Channel::Email],
            Some(list) => {
                let cs: Vec<Channel> = list
                    .get_ref()
                    .iter()
                    .filter_map(|s| self.channel(s, "paging.channels"))
                    .collect();
                if list.get_ref().is_empty() {
                    self.r
                        .error(span(list), "paging.channels: name at least one channel");
                }
                cs
            }
        };
        PagingConfig {
            channels,
            max_attempts: self.int(&raw.max_attempts, "paging.max_attempts", 1..=100, 3),
            channel_timeout: self.duration(
                &raw.channel_timeout,
                "paging.channel_timeout",
                Duration::from_secs(300),
            ),
            channel_start_wait: {
                let d = self.duration(
                    &raw.channel_start_wait,
                    "paging.channel_start_wait",
                    DEFAULT_CHANNEL_START_WAIT,
                );
                match &raw.channel_start_wait {
                    Some(s) if d > MAX_CHANNEL_START_WAIT => {
                        self.r.error(
                            span(s),
                            format!(
                                "paging.channel_start_wait: at most {} (pages must not wait longer for a modem that may never come)",
                                humantime::format_duration(MAX_CHANNEL_START_WAIT)
                            ),
                        );
                        DEFAULT_CHANNEL_START_WAIT
                    }
                    _ => d,
                }
            },
            // Both hold pages back (grouped into a digest, or for up to half the rate window):
            // bounded so a slip of the unit cannot hold a page for days.
            group_window: self.clamped_duration(
                &raw.group_window,
                "paging.group_window",
                Duration::ZERO..=Duration::from_secs(600),
                Duration::from_secs(30),
            ),
            rate_limit_count: self.int(
                &raw.rate_limit_count,
                "paging.rate_limit_count",
                1..=1000,
                6,
            ),
            rate_limit_window: self.clamped_duration(
                &raw.rate_limit_window,
                "paging.rate_limit_window",
                Duration::from_secs(1)..=Duration::from_secs(3600),
                Duration::from_secs(600),
            ),
            sms_max_parts: self.int(&raw.sms_max_parts, "paging.sms_max_parts", 1..=10, 1),
        }
    }
}
