//! Settings of the provider-compatible intakes: Opsgenie's Alert API and Splunk On-Call's
//! (VictorOps) REST endpoint.
//!
//! Their senders cannot add pagerbox's bearer token, so the key each provider puts in the request
//! (Opsgenie's `Authorization: GenieKey <key>`, the `api_key` path segment of Splunk On-Call) is
//! the credential. Keys are read from files, like every other secret, so the config stays
//! readable by anyone.

use super::Secret;

/// `[opsgenie]`: the API keys accepted as `GenieKey`.
///
/// With no keys and no `http.token_file`, any key is accepted (and used as the routing key);
/// with keys, only those (or the write token) are; anything else is answered 401.
#[derive(Debug, Clone, Default)]
pub struct OpsgenieConfig {
    pub keys: Vec<OpsgenieKey>,
}

/// `[[opsgenie.keys]]`: one accepted key and the routing key its alerts carry.
#[derive(Debug, Clone)]
pub struct OpsgenieKey {
    /// The key, read from `key_file`.
    pub key: Secret,
    /// Matched by `routes.match.routing_key`, so each key can lead to its own route, as an
    /// Opsgenie API integration leads to its team. `None`: routed by the other facts only.
    pub routing_key: Option<String>,
}

/// `[victorops]`: the Splunk On-Call REST endpoint.
#[derive(Debug, Clone, Default)]
pub struct VictorOpsConfig {
    /// The `api_key` the URL must carry (read from `api_key_file`). `None`: the write token if
    /// one is configured, else any key.
    pub api_key: Option<Secret>,
}
