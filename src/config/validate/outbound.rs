//! `[[outbound]]` -> [`crate::config::outbound::Destination`]: Slack, Teams and generic webhooks.
//!
//! A child of the validator so it can use its helpers; kept in its own file so the outbound
//! feature touches the shared validator in one place only.

use std::collections::HashSet;
use std::time::Duration;

use super::{span, RawOutbound, Validator};
use crate::config::outbound::{
    Destination, Event, Kind, DEFAULT_MAX_QUEUED, DEFAULT_SIGNATURE_HEADER,
};
use crate::config::policy::Route;
use crate::config::{read_secret, Secret};

/// Default hard limit on one POST (connect + request + answer).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Validator<'_, '_> {
    /// A secret given inline (`key`) or in a file (`key_file`), never both.
    fn inline_or_file(
        &mut self,
        inline: &Option<super::S<String>>,
        file: &Option<super::S<String>>,
        key: &str,
    ) -> Option<Secret> {
        match (inline, file) {
            (Some(v), Some(_)) => {
                self.r.error(
                    span(v),
                    format!("outbound.{key}: give {key} or {key}_file, not both"),
                );
                None
            }
            (Some(v), None) if v.get_ref().trim().is_empty() => {
                self.r
                    .error(span(v), format!("outbound.{key}: must not be empty"));
                None
            }
            (Some(v), None) => Some(Secret::new(v.get_ref().trim())),
            (None, Some(f)) => {
                let path = self.path(f.get_ref());
                match read_secret(&path) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        self.r.error(
                            span(f),
                            format!("outbound.{key}_file: cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    pub(super) fn outbound(&mut self, raw: &[RawOutbound], routes: &[Route]) -> Vec<Destination> {
        let route_ids: HashSet<&str> = routes.iter().map(|r| r.id.as_str()).collect();
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for o in raw {
            self.check_id(&o.id, "outbound.id");
            if !seen.insert(o.id.get_ref().clone()) {
                self.r.error(
                    span(&o.id),
                    format!("outbound: duplicate destination id {:?}", o.id.get_ref()),
                );
            }
            let kind = self.destination_kind(o);
            let url = self.destination_url(o);
            let secret = self.destination_secret(o, kind);
            let signature_header = self.signature_header(o);
            for r in &o.routes {
                if !route_ids.contains(r.get_ref().as_str()) {
                    self.r.error(
                        span(r),
                        format!("outbound.routes: unknown route {:?}", r.get_ref()),
                    );
                }
            }
            let events = self.destination_events(o);
            let max_queued = self.int(
                &o.max_queued,
                "outbound.max_queued",
                1..=100_000,
                DEFAULT_MAX_QUEUED,
            );
            let timeout = self.duration(&o.timeout, "outbound.timeout", DEFAULT_TIMEOUT);
            if let Some(t) = &o.timeout {
                if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(120) {
                    self.r
                        .error(span(t), "outbound.timeout: must be between 100ms and 2m");
                }
            }
            if let (Some(kind), Some(url)) = (kind, url) {
                out.push(Destination {
                    id: o.id.get_ref().clone(),
                    kind,
                    url,
                    secret,
                    signature_header,
                    routes: o.routes.iter().map(|r| r.get_ref().clone()).collect(),
                    events,
                    max_queued,
                    timeout,
                });
            }
        }
        out
    }

    /// `outbound.kind`: slack, teams or webhook.
    fn destination_kind(&mut self, o: &RawOutbound) -> Option<Kind> {
        match o.kind.get_ref().as_str() {
            "slack" => Some(Kind::Slack),
            "teams" => Some(Kind::Teams),
            "webhook" => Some(Kind::Webhook),
            other => {
                self.r.error(
                    span(&o.kind),
                    format!("outbound.kind: {other:?} is not one of slack, teams, webhook"),
                );
                None
            }
        }
    }

    /// `outbound.url` or `url_file`: required, and http(s) (never echoed: it is a credential).
    fn destination_url(&mut self, o: &RawOutbound) -> Option<Secret> {
        let url = self.inline_or_file(&o.url, &o.url_file, "url");
        if url.is_none() && o.url.is_none() && o.url_file.is_none() {
            self.r.error(
                span(&o.id),
                format!(
                    "outbound: destination {:?} needs url or url_file",
                    o.id.get_ref()
                ),
            );
        }
        if let Some(u) = &url {
            let u = u.expose();
            if !(u.starts_with("https://") || u.starts_with("http://")) {
                // The URL is a credential: say what is wrong without echoing it.
                let at = o.url.as_ref().or(o.url_file.as_ref());
                self.r.error(
                    at.and_then(span),
                    "outbound.url: must start with https:// (or http:// for a local receiver)",
                );
            }
        }
        url
    }

    /// `outbound.secret` or `secret_file`: required for webhooks, refused for the others.
    fn destination_secret(&mut self, o: &RawOutbound, kind: Option<Kind>) -> Option<Secret> {
        let secret = self.inline_or_file(&o.secret, &o.secret_file, "secret");
        if kind == Some(Kind::Webhook) && secret.is_none() && o.secret.is_none() {
            if o.secret_file.is_none() {
                self.r.error(
                    span(&o.id),
                    format!(
                        "outbound: webhook {:?} needs secret or secret_file (its HMAC-SHA256 signing key)",
                        o.id.get_ref()
                    ),
                );
            }
        } else if kind != Some(Kind::Webhook) {
            if let Some(s) = o.secret.as_ref().or(o.secret_file.as_ref()) {
                self.r.error(
                    span(s),
                    "outbound.secret: only kind = \"webhook\" is signed (Slack and Teams URLs carry their own secret)",
                );
            }
        }
        secret
    }

    /// `outbound.signature_header`: an HTTP header name.
    fn signature_header(&mut self, o: &RawOutbound) -> String {
        match &o.signature_header {
            None => DEFAULT_SIGNATURE_HEADER.to_string(),
            Some(h) => {
                let v = h.get_ref();
                let ok = !v.is_empty()
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !ok {
                    self.r.error(
                        span(h),
                        format!("outbound.signature_header: {v:?} is not an HTTP header name"),
                    );
                }
                v.clone()
            }
        }
    }

    /// `outbound.events`: which incident events are sent; all three by default.
    fn destination_events(&mut self, o: &RawOutbound) -> Vec<Event> {
        match &o.events {
            None => vec![Event::Trigger, Event::Acknowledge, Event::Resolve],
            Some(list) => {
                let mut evs = Vec::new();
                for e in list {
                    match Event::from_config(e.get_ref()) {
                        Some(ev) if !evs.contains(&ev) => evs.push(ev),
                        Some(_) => {}
                        None => self.r.error(
                            span(e),
                            format!(
                                "outbound.events: {:?} is not one of trigger, acknowledge, resolve",
                                e.get_ref()
                            ),
                        ),
                    }
                }
                evs
            }
        }
    }
}
