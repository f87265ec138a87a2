//! `[opsgenie]` and `[victorops]`: the keys those senders present are read here, so a missing or
//! unreadable key file fails `pagerbox check` (and a SIGHUP reload) at its line.

use super::*;

impl Validator<'_, '_> {
    pub(super) fn secret_file(&mut self, s: &S<String>, key: &str) -> Option<Secret> {
        let path = self.path(s.get_ref());
        match read_secret(&path) {
            Ok(secret) => Some(secret),
            Err(e) => {
                self.r.error(
                    span(s),
                    format!("{key}: cannot read {}: {e}", path.display()),
                );
                None
            }
        }
    }

    pub(super) fn integrations(
        &mut self,
        og: &RawOpsgenie,
        vo: &RawVictorOps,
    ) -> (OpsgenieConfig, VictorOpsConfig) {
        let mut keys: Vec<OpsgenieKey> = Vec::new();
        for k in &og.keys {
            let Some(key) = self.secret_file(&k.key_file, "opsgenie.keys.key_file") else {
                continue;
            };
            if keys.iter().any(|other| other.key == key) {
                self.r.error(
                    span(&k.key_file),
                    "opsgenie.keys.key_file: this key is already listed; each key may appear once",
                );
                continue;
            }
            keys.push(OpsgenieKey {
                key,
                routing_key: k.routing_key.clone().filter(|r| !r.is_empty()),
            });
        }
        let api_key = vo
            .api_key_file
            .as_ref()
            .and_then(|s| self.secret_file(s, "victorops.api_key_file"));
        (OpsgenieConfig { keys }, VictorOpsConfig { api_key })
    }
}
