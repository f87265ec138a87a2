//! Reading a config file for a daemon that will run it: [`Config::load`] and [`Config::parse`]
//! validate the file (`config`) and build the email sender from it as the daemon will
//! (`notify::email`), so `pagerbox check`, the start and every reload report a broken `[email]`
//! at its key. This sits above both, so that `config` stays plain data every feature can read.

use std::path::Path;

use crate::config::{Config, ConfigError, EmailConfig, EmailKey, Loaded};
use crate::notify::email::{EmailError, EmailSender};

impl Config {
    /// Reads and validates the file at `path`. Relative paths inside are taken from the file's
    /// directory.
    pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut loaded = Self::parse(&text, &path.display().to_string(), base)?;
        loaded.config.path = Some(path.to_path_buf());
        Ok(loaded)
    }

    /// Validates config text. `file` names it in diagnostics; `base` resolves relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Loaded, ConfigError> {
        Self::parse_with(text, file, base, email_probe)
    }
}

/// The daemon's email sender, built once to see whether it can be: the error's key and text.
fn email_probe(cfg: &EmailConfig) -> Result<(), (EmailKey, String)> {
    EmailSender::new(cfg).map(drop).map_err(|e| {
        let key = match &e {
            EmailError::PasswordFile { .. } => EmailKey::PasswordFile,
            EmailError::CaFile { .. } | EmailError::CaInvalid { .. } => EmailKey::CaFile,
            EmailError::FromAddress { .. } => EmailKey::From,
            EmailError::SendmailNotFound { .. } => EmailKey::Transport,
            _ => EmailKey::Section,
        };
        (key, e.to_string())
    })
}
