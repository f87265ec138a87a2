//! Intake: alerts arrive over HTTP (axum) and UDP, in pagerbox's own JSON, PagerDuty Events v2,
//! or Alertmanager/Grafana webhook form, and become incidents in the store.
//!
//! Intake owns parsing, authentication, routing (which policy an alert follows) and the answer
//! the sender gets. The contract with senders: a success answer (202) is given only after the
//! store has committed the incident and its timeline event; anything that might succeed later is
//! answered 5xx/429 so the sender retries; 4xx only for a body that will never be accepted.

pub mod formats;
