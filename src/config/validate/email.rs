//! `[email]` -> [`EmailConfig`], and the sender built once as the daemon will.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn email(&mut self, raw: &RawEmail) -> EmailConfig {
        let transport = match self.one_of(
            &raw.transport,
            "email.transport",
            &["smtp", "sendmail"],
            "smtp",
        ) {
            "sendmail" => EmailTransport::Sendmail,
            _ => EmailTransport::Smtp,
        };
        let tls = match self.one_of(
            &raw.tls,
            "email.tls",
            &["starttls", "implicit", "none"],
            "starttls",
        ) {
            "implicit" => SmtpTls::Implicit,
            "none" => SmtpTls::None,
            _ => SmtpTls::StartTls,
        };
        let default_port = match tls {
            SmtpTls::Implicit => 465,
            SmtpTls::StartTls => 587,
            SmtpTls::None => 25,
        };
        let enabled = raw.enabled.unwrap_or(false);
        let from = raw
            .from
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_else(|| "pagerbox <pagerbox@localhost>".into());
        if let Some(s) = &raw.from {
            if s.get_ref().parse::<lettre::message::Mailbox>().is_err() {
                self.r.error(
                    span(s),
                    format!(
                        "email.from: {:?} is not a mailbox; write \"Name <user@host>\"",
                        s.get_ref()
                    ),
                );
            }
        }
        if enabled && transport == EmailTransport::Smtp && raw.host.is_none() {
            self.r.error(
                None,
                "email: `host` is required when email is enabled with transport = \"smtp\"",
            );
        }
        let cfg = EmailConfig {
            enabled,
            transport,
            host: raw
                .host
                .as_ref()
                .map(|s| s.get_ref().clone())
                .unwrap_or_else(|| "localhost".into()),
            port: self.int(&raw.port, "email.port", 1..=65535, default_port),
            tls,
            username: raw.username.clone(),
            password_file: raw.password_file.as_ref().map(|s| self.path(s.get_ref())),
            ca_file: raw.ca_file.as_ref().map(|s| self.path(s.get_ref())),
            from,
            // Zero would fail every email; minutes would hold a sender on a stalled relay while
            // a page waits (the sender's own bound on an attempt follows this one).
            timeout: self.clamped_duration(
                &raw.timeout,
                "email.timeout",
                Duration::from_secs(1)..=crate::config::EMAIL_TIMEOUT_MAX,
                Duration::from_secs(20),
            ),
        };
        if enabled && !self.r.has_errors() {
            self.email_sender(raw, &cfg);
        }
        cfg
    }

    /// Builds the email sender once, as the daemon will, so a missing password or CA file (or
    /// a missing sendmail) is found here and reported at its key. It is [`Level::Impaired`]:
    /// email is an optional channel, so at start the daemon runs without it and pages by SMS
    /// and voice, while `check` and a reload refuse the file.
    fn email_sender(&mut self, raw: &RawEmail, cfg: &EmailConfig) {
        // Each file on its own first, so both are reported when both are missing.
        let mut files_ok = true;
        for (key, path, at) in [
            (
                "email.password_file",
                &cfg.password_file,
                &raw.password_file,
            ),
            ("email.ca_file", &cfg.ca_file, &raw.ca_file),
        ] {
            let Some(path) = path else { continue };
            let read = if key == "email.ca_file" {
                // Read again at every reload, like the secrets: a regular file only.
                crate::config::regular_file(path).and_then(|()| std::fs::read(path).map(drop))
            } else {
                read_secret(path).map(drop)
            };
            if let Err(e) = read {
                files_ok = false;
                self.r.impaired(
                    at.as_ref().and_then(span),
                    format!(
                        "{key}: cannot read {}: {e}; email cannot page until this is fixed",
                        path.display()
                    ),
                );
            }
        }
        if !files_ok {
            return;
        }
        let Err((key, e)) = (self.email_probe)(cfg) else {
            return;
        };
        let (key, at) = match key {
            EmailKey::PasswordFile => ("email.password_file", &raw.password_file),
            EmailKey::CaFile => ("email.ca_file", &raw.ca_file),
            EmailKey::From => ("email.from", &raw.from),
            EmailKey::Transport => ("email.transport", &raw.transport),
            EmailKey::Section => ("email", &None),
        };
        self.r.impaired(
            at.as_ref().and_then(span),
            format!("{key}: {e}; email cannot page until this is fixed"),
        );
    }
}
