//! `[[users]]` -> [`User`]: who can be paged, and how.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn users(&mut self, raw: &[RawUser], daemon: &DaemonConfig) -> Vec<User> {
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut phones: HashMap<PhoneNumber, String> = HashMap::new();
        let mut out = Vec::new();
        for u in raw {
            let id = u.id.get_ref().clone();
            self.check_id(&u.id, "users.id");
            if seen.insert(id.clone(), ()).is_some() {
                self.r
                    .error(span(&u.id), format!("users: duplicate user id {id:?}"));
            }
            let phone = self.user_phone(u, daemon);
            if let (Some(p), Some(s)) = (&phone, &u.phone) {
                if let Some(other) = phones.insert(p.clone(), id.clone()) {
                    self.r.error(span(s), format!("users.phone: {p} is also the number of user {other:?}; replies could not tell them apart"));
                }
            }
            if let Some(e) = &u.email {
                if e.get_ref().parse::<lettre::Address>().is_err() {
                    self.r.error(
                        span(e),
                        format!("users.email: {:?} is not an email address", e.get_ref()),
                    );
                }
            }
            let rules = if u.rules.is_empty() {
                default_rules(phone.is_some(), u.email.is_some())
            } else {
                self.user_rules(u, &id, phone.is_some())
            };
            if u.phone.is_none() && u.email.is_none() {
                self.r.error(
                    span(&u.id),
                    format!("users: user {id:?} has neither phone nor email and cannot be paged"),
                );
            }
            out.push(User {
                name: u.name.clone().unwrap_or_else(|| id.clone()),
                id,
                phone,
                email: u.email.as_ref().map(|e| e.get_ref().clone()),
                shift_notices: u.shift_notices,
                rules,
            });
        }
        out
    }

    /// `users.phone`: E.164 only, with the normalized form as a hint when the number is local.
    fn user_phone(&mut self, u: &RawUser, daemon: &DaemonConfig) -> Option<PhoneNumber> {
        u.phone.as_ref().and_then(|s| match PhoneNumber::parse_e164(s.get_ref()) {
            Some(p) => Some(p),
            None => {
                let hint = PhoneNumber::normalize(s.get_ref(), &daemon.country_code)
                    .map(|p| format!(" (did you mean \"{p}\"?)"))
                    .unwrap_or_default();
                self.r.error(
                    span(s),
                    format!(
                        "users.phone: {:?} is not an E.164 number; write + then country code and number{hint}",
                        s.get_ref()
                    ),
                );
                None
            }
        })
    }

    /// `users.rules` as written: each rule needs the contact its channel pages.
    fn user_rules(&mut self, u: &RawUser, id: &str, has_phone: bool) -> Vec<NotificationRule> {
        let mut rules = Vec::new();
        for rule in &u.rules {
            let urgency = match &rule.urgency {
                None => DEFAULT_RULE_URGENCY,
                Some(s) => match Urgency::from_str(s.get_ref()) {
                    Ok(x) => x,
                    Err(e) => {
                        self.r.error(span(s), format!("users.rules.urgency: {e}"));
                        continue;
                    }
                },
            };
            let Some(channel) = self.channel(&rule.channel, "users.rules.channel") else {
                continue;
            };
            if matches!(channel, Channel::Sms | Channel::Voice) && !has_phone {
                self.r.error(
                    span(&rule.channel),
                    format!("users.rules: user {id:?} has a {channel} rule but no phone"),
                );
            }
            if channel == Channel::Email && u.email.is_none() {
                self.r.error(
                    span(&rule.channel),
                    format!("users.rules: user {id:?} has an email rule but no email"),
                );
            }
            if channel == Channel::Voice && urgency == Urgency::Low {
                self.r.error(
                    span(&rule.channel),
                    "users.rules: low urgency never calls; use sms or email",
                );
            }
            let after = self.page_delay(&rule.after, "users.rules.after", Duration::ZERO);
            rules.push(NotificationRule {
                urgency,
                channel,
                after,
            });
        }
        rules
    }
}

/// No `users.rules`: the default rules, keeping only the channels this person has.
fn default_rules(has_phone: bool, has_email: bool) -> Vec<NotificationRule> {
    let mut rules: Vec<NotificationRule> = crate::config::policy::default_rules()
        .into_iter()
        .filter(|r| match r.channel {
            Channel::Sms | Channel::Voice => has_phone,
            Channel::Email => has_email,
        })
        .collect();
    // The defaults wait for channels this person may not have (email after 5
    // minutes assumes SMS came first): the first remaining rule of each urgency
    // starts at once, and the later ones keep their spacing from it.
    for urgency in [Urgency::High, Urgency::Low] {
        let first = rules
            .iter()
            .filter(|r| r.urgency == urgency)
            .map(|r| r.after)
            .min();
        if let Some(first) = first {
            for r in rules.iter_mut().filter(|r| r.urgency == urgency) {
                r.after -= first;
            }
        }
    }
    rules
}
