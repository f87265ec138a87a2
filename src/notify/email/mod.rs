//! The email channel: turns an incident into an email and hands it to an SMTP relay or the local
//! `sendmail`, and says whether a failure is worth retrying.
//!
//! Two halves that share only [`EmailMessage`]:
//! - [`smtp`] moves a message: [`EmailSender`] is built once from `[email]` and sends each
//!   message on its own connection within `[email] timeout`; [`EmailError::is_retryable`] sorts
//!   failures the way RFC 5321 does.
//! - [`render`] writes a message: incident (or digest) + timeline -> subject, plain text and
//!   HTML, as pure functions. The HTML part is a maud template, so every piece of alert text is
//!   escaped by construction, and only `http`, `https` and `mailto` links become clickable.
//!
//! Neither decides when to send, to whom, or what happens after a failure: that is the outbox in
//! [`crate::notify`]. Neither logs addresses, bodies or secrets.

pub mod render;
pub mod smtp;

pub use render::{
    ack_paths, render_digest_email, render_incident_email, sms_went_out, IncidentEmail,
};
pub use smtp::{EmailError, EmailSender, SmtpReceipt};

/// One email to send. Plain data; build it with [`render_incident_email`] or by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// One recipient, as `addr@example.org` or `Name <addr@example.org>`.
    pub to: String,
    /// The subject, any Unicode; line breaks are replaced by spaces when sent.
    pub subject: String,
    /// The plain-text body; always sent.
    pub text: String,
    /// An HTML alternative of the same content. When present the email is
    /// `multipart/alternative` with the text part first.
    pub html: Option<String>,
}

/// Replaces control characters (line breaks above all) by spaces, for header values.
fn one_line(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.trim().to_string()
}
