//! `[selftest]` -> the self-test: a page sent through the real path on a schedule.

use super::*;

impl Validator<'_, '_> {
    /// `[selftest]`; absent: disabled, defaults.
    pub(super) fn selftest(
        &mut self,
        raw: Option<&super::raw::RawSelftest>,
        daemon: &DaemonConfig,
        schedule_ids: &HashSet<&str>,
    ) -> crate::config::selftest::SelftestConfig {
        use crate::config::selftest::SelftestConfig;
        let d = SelftestConfig::default();
        let Some(raw) = raw else {
            return d;
        };
        let schedule = raw
            .schedule
            .as_ref()
            .and_then(|s| self.test_schedule(s, daemon));
        let target = raw
            .target
            .as_ref()
            .and_then(|s| self.selftest_target(s, schedule_ids));
        let expect_reply_from = raw
            .expect_reply_from
            .as_ref()
            .and_then(|s| self.reply_number(s));
        let credit_ussd = raw.credit_ussd.as_ref().and_then(|s| self.ussd_code(s));
        let credit_pattern = self.credit_pattern(raw.credit_pattern.as_ref(), &d.credit_pattern);
        self.selftest_needs(raw);
        SelftestConfig {
            enabled: true,
            schedule,
            target,
            expect_reply_from,
            reply_timeout: self.duration(
                &raw.reply_timeout,
                "selftest.reply_timeout",
                d.reply_timeout,
            ),
            submit_timeout: self.duration(
                &raw.submit_timeout,
                "selftest.submit_timeout",
                d.submit_timeout,
            ),
            delivery_timeout: self.duration(
                &raw.delivery_timeout,
                "selftest.delivery_timeout",
                d.delivery_timeout,
            ),
            credit_ussd,
            credit_pattern,
            credit_min: raw.credit_min.as_ref().map(|s| *s.get_ref()),
            credit_interval: self.duration(
                &raw.credit_interval,
                "selftest.credit_interval",
                d.credit_interval,
            ),
            ussd_timeout: self.duration(&raw.ussd_timeout, "selftest.ussd_timeout", d.ussd_timeout),
            min_signal_dbm: self.int(
                &raw.min_signal_dbm,
                "selftest.min_signal_dbm",
                -140..=-40,
                d.min_signal_dbm,
            ),
            grace: self.duration(&raw.grace, "selftest.grace", d.grace),
            recover: self.duration(&raw.recover, "selftest.recover", d.recover),
            check_interval: self
                .duration(
                    &raw.check_interval,
                    "selftest.check_interval",
                    d.check_interval,
                )
                .max(std::time::Duration::from_millis(100)),
        }
    }

    /// Keys that only mean something with another: a reply needs a target to send the SMS
    /// to, a credit threshold needs the USSD code that asks for the balance.
    fn selftest_needs(&mut self, raw: &super::raw::RawSelftest) {
        if let (Some(s), None) = (&raw.expect_reply_from, &raw.target) {
            self.r.error(
                span(s),
                "selftest.expect_reply_from: needs a target to send the test SMS to",
            );
        }
        if let (Some(s), None) = (&raw.credit_min, &raw.credit_ussd) {
            self.r.error(
                span(s),
                "selftest.credit_min: needs credit_ussd (the code that asks for the balance)",
            );
        }
    }

    /// `selftest.schedule`: when the test page is sent, in the daemon's zone.
    fn test_schedule(
        &mut self,
        s: &S<String>,
        daemon: &DaemonConfig,
    ) -> Option<crate::config::test_schedule::TestSchedule> {
        use crate::config::test_schedule::TestSchedule;
        match TestSchedule::parse(s.get_ref(), daemon.time_zone) {
            Ok(t) => Some(t),
            Err(e) => {
                self.r.error(span(s), format!("selftest.schedule: {e}"));
                None
            }
        }
    }

    /// `selftest.target`: an E.164 number, or `oncall:<schedule id>` for whoever is on call.
    fn selftest_target(
        &mut self,
        s: &S<String>,
        schedule_ids: &HashSet<&str>,
    ) -> Option<crate::config::selftest::Target> {
        use crate::config::selftest::Target;
        let v = s.get_ref().trim();
        if let Some(id) = v.strip_prefix("oncall:") {
            if schedule_ids.contains(id) {
                Some(Target::OnCall(id.to_string()))
            } else {
                self.r.error(
                    span(s),
                    format!("selftest.target: no schedule {id:?} (write oncall:<schedule id>)"),
                );
                None
            }
        } else {
            match PhoneNumber::parse_e164(v) {
                Some(n) => Some(Target::Number(n)),
                None => {
                    self.r.error(
                        span(s),
                        format!("selftest.target: {v:?} is neither an E.164 number (+49...) nor oncall:<schedule id>"),
                    );
                    None
                }
            }
        }
    }

    /// `selftest.expect_reply_from`: the number whose reply proves the SMS arrived.
    fn reply_number(&mut self, s: &S<String>) -> Option<PhoneNumber> {
        let n = PhoneNumber::parse_e164(s.get_ref().trim());
        if n.is_none() {
            self.r.error(
                span(s),
                format!(
                    "selftest.expect_reply_from: {:?} is not an E.164 number; write + then country code and number",
                    s.get_ref()
                ),
            );
        }
        n
    }

    /// `selftest.credit_ussd`: the code that asks the network for the balance.
    fn ussd_code(&mut self, s: &S<String>) -> Option<String> {
        let c = s.get_ref().trim().to_string();
        if crate::config::selftest::valid_ussd_code(&c) {
            Some(c)
        } else {
            self.r.error(
                span(s),
                format!("selftest.credit_ussd: {c:?} is not a USSD code (digits, * and #, e.g. \"*100#\")"),
            );
            None
        }
    }

    /// `selftest.credit_pattern`: a regex; an invalid one is reported and the default kept.
    fn credit_pattern(&mut self, s: Option<&S<String>>, default: &regex::Regex) -> regex::Regex {
        match s {
            None => default.clone(),
            Some(s) => match regex::Regex::new(s.get_ref()) {
                Ok(r) => r,
                Err(e) => {
                    let first = e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    self.r.error(
                        span(s),
                        format!("selftest.credit_pattern: not a valid regex: {first}"),
                    );
                    default.clone()
                }
            },
        }
    }
}
