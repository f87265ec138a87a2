//! Metrics: what `GET /metrics` tells Prometheus, in the OpenMetrics text format.
//!
//! This module owns the metric names, their label sets and the encoder. It does not own any of
//! the state it reports: events (an alert received, a page sent, a commit) are counted where they
//! happen through a cloned [`Metrics`] handle, and levels (incidents by state, outbox depth, modem
//! and channel health) are read at scrape time from their owners (the store, the modem's health
//! watch, the paging health watch) and passed in as a [`Snapshot`], so nothing is cached twice.
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client, encodes the
//! OpenMetrics text format Prometheus prefers, and keeps counters and histograms in atomics, so
//! recording from the store thread, the senders and the HTTP handlers takes no lock of ours
//! (label families take the crate's internal read lock, held only for the increment).
//!
//! Every name starts with `pagerbox_`; the list is in README.md ("Metrics").

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::health::PagingHealth;
use crate::incident::{Channel, Status};
use crate::modem::{Health, HealthState};

/// The prefix of every metric name.
const PREFIX: &str = "pagerbox";

/// The content type of [`Metrics::encode`]'s output (OpenMetrics 1.0 text), for the HTTP answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Page latency buckets, seconds: an SMS through a healthy modem takes a few seconds; a page that
/// retried or fell through to another channel takes minutes. 0.05 s to 300 s.
const PAGE_LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0,
];

/// Store commit buckets, seconds: an fsync on an SD card is a few ms when idle and can reach
/// seconds when the card is busy or worn.
const COMMIT_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Which integration an alert came through (label `source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertSource {
    /// `POST /v1/alerts`, pagerbox's own JSON.
    Own,
    /// `POST /v2/enqueue`, PagerDuty Events v2.
    Pagerduty,
    /// `POST /v2/change/enqueue`, PagerDuty change events (recorded, never paged).
    PagerdutyChange,
    /// `POST /v1/integrations/alertmanager`.
    Alertmanager,
    /// `POST /v1/integrations/grafana`.
    Grafana,
    /// A UDP datagram.
    Udp,
    /// The Opsgenie-compatible Alert API (`/v2/alerts...`).
    Opsgenie,
    /// The Splunk On-Call (VictorOps) REST endpoint.
    Victorops,
}

impl AlertSource {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertSource::Own => "own",
            AlertSource::Pagerduty => "pagerduty",
            AlertSource::PagerdutyChange => "pagerduty_change",
            AlertSource::Alertmanager => "alertmanager",
            AlertSource::Grafana => "grafana",
            AlertSource::Udp => "udp",
            AlertSource::Opsgenie => "opsgenie",
            AlertSource::Victorops => "victorops",
        }
    }
}

/// What became of a received alert (label `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertOutcome {
    /// Stored: opened an incident, or acknowledged/resolved one (or a change event recorded).
    Accepted,
    /// Stored as one more alert on an open incident with the same dedup key.
    Deduplicated,
    /// Acknowledge or resolve for a dedup key no incident has.
    Unmatched,
    /// The body will never be accepted (malformed JSON, missing fields): answered 4xx.
    Rejected,
    /// Missing or wrong token: answered 401.
    Unauthorized,
    /// The store could not commit it: the sender was told to retry (UDP: lost).
    StoreFailure,
    /// Its body did not arrive within the body timeout: the sender was told to retry.
    Unread,
    /// A UDP datagram that is not an alert line.
    Junk,
}

impl AlertOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertOutcome::Accepted => "accepted",
            AlertOutcome::Deduplicated => "deduplicated",
            AlertOutcome::Unmatched => "unmatched",
            AlertOutcome::Rejected => "rejected",
            AlertOutcome::Unauthorized => "unauthorized",
            AlertOutcome::StoreFailure => "store_failure",
            AlertOutcome::Unread => "unread",
            AlertOutcome::Junk => "junk",
        }
    }

    /// The outcome of an alert the store applied.
    pub fn of(stored: &crate::store::AlertOutcome) -> AlertOutcome {
        use crate::store::AlertOutcome as S;
        match stored {
            S::Created(_) | S::Changed(_) | S::Unchanged(_) => AlertOutcome::Accepted,
            S::Repeated(_) => AlertOutcome::Deduplicated,
            S::NotFound(_) => AlertOutcome::Unmatched,
        }
    }
}

/// What one send attempt of a page came to, or what the network said later (label `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PageOutcome {
    /// Handed over: SMS accepted by the network, SMTP 250, call answered.
    Sent,
    /// SMS delivery report: delivered to the handset.
    Delivered,
    /// SMS delivery report: not delivered.
    Undelivered,
    /// Failed; will be tried again on the same channel.
    Retry,
    /// Gave up on this channel; continues on the next.
    FellThrough,
    /// Cannot go anywhere: ended.
    Failed,
    /// Nothing to send any more (incident acknowledged meanwhile).
    Cancelled,
}

impl PageOutcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PageOutcome::Sent => "sent",
            PageOutcome::Delivered => "delivered",
            PageOutcome::Undelivered => "undelivered",
            PageOutcome::Retry => "retry",
            PageOutcome::FellThrough => "fell_through",
            PageOutcome::Failed => "failed",
            PageOutcome::Cancelled => "cancelled",
        }
    }

    /// The outcome of a recorded attempt.
    pub fn of(attempt: &crate::store::outbox::Attempt) -> PageOutcome {
        use crate::store::outbox::Attempt as A;
        match attempt {
            A::Sent { .. } => PageOutcome::Sent,
            A::Retry { .. } => PageOutcome::Retry,
            A::FallThrough { .. } => PageOutcome::FellThrough,
            A::Failed { .. } => PageOutcome::Failed,
            A::Cancelled { .. } => PageOutcome::Cancelled,
        }
    }
}

/// Label values are our fixed lower-case words, never user input.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    )*};
}
label_value!(AlertSource, AlertOutcome, PageOutcome, Channel, Status);

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    source: AlertSource,
    outcome: AlertOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PageLabels {
    channel: Channel,
    outcome: PageOutcome,
}

/// `destination` is a configured `[[outbound]] id` (bounded by the config, never a URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutboundLabels {
    destination: String,
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ChannelLabels {
    channel: Channel,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: Status,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HealthLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// A thread of the pair's coordinator (`session`, `pages`).
#[cfg(feature = "ha")]
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ThreadLabels {
    thread: &'static str,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

struct Inner {
    registry: Registry,
    alerts: Family<AlertLabels, Counter>,
    pages: Family<PageLabels, Counter>,
    outbound: Family<OutboundLabels, Counter>,
    page_latency: HistogramFamily<ChannelLabels>,
    store_commit: Histogram,
    clock_steps_back: Counter,
    http: HttpConnectionMetrics,
    started: DateTime<Utc>,
}

/// The HTTP server's connection limit at work (see `api::server`).
#[derive(Default)]
struct HttpConnectionMetrics {
    open: Gauge,
    evicted: Counter,
    refused: Counter,
}

/// The daemon's event metrics. Cheap to clone (an `Arc` inside); every clone records into the
/// same counters. Recording never blocks and never fails.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// New, all counters at zero; `started` is reported as the process start time.
    pub fn new(started: DateTime<Utc>) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts_received",
            "Alerts received, by integration and what became of them",
            alerts.clone(),
        );
        let pages = Family::<PageLabels, Counter>::default();
        registry.register(
            "pages",
            "Page send attempts and SMS delivery reports, by channel and outcome",
            pages.clone(),
        );
        let outbound = Family::<OutboundLabels, Counter>::default();
        registry.register(
            "outbound",
            "Outbound notification attempts (Slack, Teams, webhooks), by destination and outcome",
            outbound.clone(),
        );
        let page_latency: HistogramFamily<ChannelLabels> =
            Family::new_with_constructor(|| Histogram::new(PAGE_LATENCY_BUCKETS));
        registry.register_with_unit(
            "page_latency",
            "From a page being queued to the channel reporting it sent, retries and fall-through included",
            Unit::Seconds,
            page_latency.clone(),
        );
        let store_commit = Histogram::new(COMMIT_BUCKETS);
        registry.register_with_unit(
            "store_commit",
            "Time to commit one store transaction (a group of writes) to disk",
            Unit::Seconds,
            store_commit.clone(),
        );
        let clock_steps_back = Counter::default();
        registry.register(
            "clock_steps_back",
            "Times the wall clock was found stepped back; pending pages and escalation steps were moved back with it",
            clock_steps_back.clone(),
        );
        let http = HttpConnectionMetrics::default();
        registry.register(
            "http_connections_open",
            "HTTP connections open now",
            http.open.clone(),
        );
        registry.register(
            "http_connections_evicted",
            "Idle or unfinished HTTP connections closed to make room at http.max_connections",
            http.evicted.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once because http.max_connections were all busy",
            http.refused.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                http,
                alerts,
                pages,
                outbound,
                page_latency,
                store_commit,
                clock_steps_back,
                started,
            }),
        }
    }

    /// Counts `n` alerts from `source` that came to `outcome` (an Alertmanager group counts each
    /// alert in it; a body that could not be read counts once).
    pub fn alerts(&self, source: AlertSource, outcome: AlertOutcome, n: u64) {
        self.inner
            .alerts
            .get_or_create(&AlertLabels { source, outcome })
            .inc_by(n);
    }

    /// Counts one alert from `source` that came to `outcome`.
    pub fn alert(&self, source: AlertSource, outcome: AlertOutcome) {
        self.alerts(source, outcome, 1);
    }

    /// Records how many HTTP connections are open now.
    pub fn http_connections_open(&self, n: usize) {
        self.inner
            .http
            .open
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts one HTTP connection closed to make room for a new one.
    pub fn http_connection_evicted(&self) {
        self.inner.http.evicted.inc();
    }

    /// Counts one HTTP connection refused because every slot was busy.
    pub fn http_connection_refused(&self) {
        self.inner.http.refused.inc();
    }

    /// Counts one page attempt (or delivery report) on `channel`.
    pub fn page(&self, channel: Channel, outcome: PageOutcome) {
        self.inner
            .pages
            .get_or_create(&PageLabels { channel, outcome })
            .inc();
    }

    /// Counts one outbound notification attempt to the `[[outbound]]` destination `id` of `kind`
    /// (`slack`, `teams`, `webhook`) that came to `outcome` (`sent`, `retry`, `failed`).
    pub fn outbound(&self, id: &str, kind: &'static str, outcome: &'static str) {
        self.inner
            .outbound
            .get_or_create(&OutboundLabels {
                destination: id.to_string(),
                kind,
                outcome,
            })
            .inc();
    }

    /// Records how long a page on `channel` took from queued to sent.
    pub fn page_latency(&self, channel: Channel, latency: Duration) {
        self.inner
            .page_latency
            .get_or_create(&ChannelLabels { channel })
            .observe(latency.as_secs_f64());
    }

    /// Records how long one store commit took (called by the store thread).
    pub fn store_commit(&self, took: Duration) {
        self.inner.store_commit.observe(took.as_secs_f64());
    }

    /// The full exposition: the event metrics plus the levels in `snapshot`, ending in `# EOF`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let levels = levels(snapshot, self.inner.started);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &self.inner.registry);
        let _ = prometheus_client::encoding::text::encode_registry(&mut out, &levels);
        let _ = prometheus_client::encoding::text::encode_eof(&mut out);
        out
    }
}

/// The store thread times its commits into `pagerbox_store_commit_seconds` and counts the wall
/// clock's steps back into `pagerbox_clock_steps_back_total`.
impl crate::store::StoreObserver for Metrics {
    fn commit_took(&self, took: Duration) {
        self.store_commit(took);
    }

    fn clock_stepped_back(&self, _by: Duration) {
        self.inner.clock_steps_back.inc();
    }
}

/// The levels read at scrape time from their owners. `None` where a part does not exist (no
/// modem) or could not be read (store failing): those metrics are left out rather than shown
/// as a misleading zero.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The box's verdict: `/healthz` would answer 503 (its write health, tasks, modem,
    /// channels, overdue pages, ...; see [`crate::health::assess`]).
    pub impaired: bool,
    /// Incidents by state; states not listed count zero.
    pub incidents: Option<Vec<(Status, i64)>>,
    /// Pages waiting to go out (pending or in flight), and the age of the oldest.
    pub outbox: Option<(i64, Option<Duration>)>,
    /// How long the oldest outbox row in `sending` has been claimed (`Some(ZERO)`-like 0 when
    /// none is; `None` when the store could not be read). A claim normally lasts one send; a
    /// growing age is an outcome that cannot be recorded.
    pub oldest_sending: Option<Option<Duration>>,
    /// Escalations a silence holds now (`None` when the store could not be read).
    pub held_by_silence: Option<i64>,
    /// Open incidents whose policy ran out without an acknowledgement (`None` when the store
    /// could not be read).
    pub exhausted: Option<i64>,
    /// The modem's last published health, when a modem is configured.
    pub modem: Option<Health>,
    /// Which paging channels can send.
    pub paging: Option<PagingHealth>,
    /// Standby behind a cloud pager, when the daemon runs it.
    pub standby: Option<crate::health::Status>,
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn float_gauge(registry: &mut Registry, name: &str, help: &str, unit: Unit, value: f64) {
    let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    g.set(value);
    registry.register_with_unit(name, help, unit, g);
}

/// A registry holding the scrape-time levels; built per scrape, so a level that does not apply
/// (no modem) is simply absent.
// Long on purpose: one registration per metric, in /metrics order; splitting scatters the list.
fn levels(s: &Snapshot, started: DateTime<Utc>) -> Registry {
    let mut r = Registry::with_prefix(PREFIX);
    let build = Family::<VersionLabels, Gauge>::default();
    build
        .get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    r.register("build_info", "pagerbox version; always 1", build);
    gauge(
        &mut r,
        "impaired",
        "1 when /healthz answers 503: pages cannot go out as they should (the problems are named there)",
        i64::from(s.impaired),
    );
    float_gauge(
        &mut r,
        "process_start_time",
        "When the daemon started, Unix time",
        Unit::Seconds,
        started.timestamp_millis() as f64 / 1000.0,
    );
    if let Some(counts) = &s.incidents {
        let fam = Family::<StateLabels, Gauge>::default();
        for state in [Status::Triggered, Status::Acknowledged, Status::Resolved] {
            let n = counts
                .iter()
                .filter(|(st, _)| *st == state)
                .map(|(_, n)| n)
                .sum();
            fam.get_or_create(&StateLabels { state }).set(n);
        }
        r.register("incidents", "Incidents in the store, by state", fam);
    }
    if let Some((depth, oldest)) = s.outbox {
        gauge(
            &mut r,
            "outbox_pending",
            "Pages waiting to go out (pending or being sent)",
            depth,
        );
        float_gauge(
            &mut r,
            "outbox_oldest_pending_age",
            "Age of the oldest page waiting to go out; 0 when none is",
            Unit::Seconds,
            oldest.unwrap_or_default().as_secs_f64(),
        );
    }
    if let Some(age) = s.oldest_sending {
        float_gauge(
            &mut r,
            "outbox_oldest_sending_age",
            "How long the oldest claimed outbox row has been in sending; 0 when none is",
            Unit::Seconds,
            age.unwrap_or_default().as_secs_f64(),
        );
    }
    if let Some(n) = s.held_by_silence {
        gauge(
            &mut r,
            "incidents_held_by_silence",
            "Incidents whose paging waits for a silence (runtime or a config window) to end",
            n,
        );
    }
    if let Some(n) = s.exhausted {
        gauge(
            &mut r,
            "incidents_exhausted",
            "Open incidents whose escalation policy ran out without an acknowledgement: nobody is paged for them again",
            n,
        );
    }
    gauge(
        &mut r,
        "modem_present",
        "1 when a modem is configured",
        i64::from(s.modem.is_some()),
    );
    if let Some(h) = &s.modem {
        let fam = Family::<HealthLabels, Gauge>::default();
        for st in [HealthState::Up, HealthState::Degraded, HealthState::Down] {
            fam.get_or_create(&HealthLabels { state: st.as_str() })
                .set(i64::from(h.state == st));
        }
        r.register(
            "modem_health",
            "The modem's health: 1 for the current state",
            fam,
        );
        gauge(
            &mut r,
            "modem_registered",
            "1 when the modem is registered on the network (home or roaming)",
            i64::from(h.registered),
        );
        gauge(
            &mut r,
            "modem_sim_ready",
            "1 when the SIM is ready",
            i64::from(h.sim_ready),
        );
        let dropped = Counter::<u64>::default();
        dropped.inc_by(h.events_dropped);
        r.register(
            "modem_events_dropped",
            "Modem events the driver dropped because the daemon did not take them and its backlog was full (delivery reports first)",
            dropped,
        );
        if let Some(t) = h.last_answer {
            float_gauge(
                &mut r,
                "modem_last_answer_time",
                "When the modem last completed an AT exchange, Unix time; absent until it first answers",
                Unit::Seconds,
                t.timestamp_millis() as f64 / 1000.0,
            );
        }
        if let Some(dbm) = h.signal_dbm {
            gauge(
                &mut r,
                "modem_signal_dbm",
                "Signal strength (AT+CSQ) in dBm; absent when unknown",
                i64::from(dbm),
            );
        }
    }
    if let Some(p) = &s.paging {
        let fam = Family::<ChannelLabels, Gauge>::default();
        for c in &p.ready {
            fam.get_or_create(&ChannelLabels { channel: *c }).set(1);
        }
        for (c, _) in &p.down {
            fam.get_or_create(&ChannelLabels { channel: *c }).set(0);
        }
        r.register(
            "channel_ready",
            "1 when a paging channel can send; email is 0 after the last SMTP send failed",
            fam,
        );
        gauge(
            &mut r,
            "paging_impaired",
            "1 when no paging channel can send (pages are kept and retried)",
            i64::from(p.impaired()),
        );
    }
    if let Some(sb) = s.standby.as_ref().filter(|sb| sb.enabled) {
        gauge(
            &mut r,
            "standby_held",
            "Incidents whose first page is held while the cloud pager has its grace",
            sb.held,
        );
        if sb.reachability != crate::health::Reachability::NotAsked {
            gauge(
                &mut r,
                "standby_upstream_reachable",
                "1 when the last check of the cloud pager got an answer",
                i64::from(sb.reachability == crate::health::Reachability::Reachable),
            );
        }
        if let Some(t) = sb.last_success {
            float_gauge(
                &mut r,
                "standby_last_success_time",
                "When a check of the cloud pager last got an answer, Unix time",
                Unit::Seconds,
                t.timestamp_millis() as f64 / 1000.0,
            );
        }
    }
    // Pair hook: whether this half of a pair coordinates with its peer.
    #[cfg(feature = "ha")]
    if let Some(standing) = crate::health::pair::standing() {
        use crate::health::pair::Standing;
        gauge(
            &mut r,
            "pair_coordinated",
            "1 while pages are claimed through etcd; 0 while this box pages alone or independently",
            i64::from(standing == Standing::Paired),
        );
        gauge(
            &mut r,
            "pair_config_mismatch",
            "1 while the peer runs another escalation config (both boxes page on their own)",
            i64::from(standing == Standing::Independent),
        );
        let restarts = Family::<ThreadLabels, Counter>::default();
        for (thread, n) in crate::health::pair::restarts() {
            restarts
                .get_or_create(&ThreadLabels {
                    thread: thread.name(),
                })
                .inc_by(n);
        }
        r.register(
            "pair_thread_restarts",
            "Times a thread of the pair's coordinator panicked and was started again",
            restarts,
        );
    }
    r
}

#[cfg(test)]
mod tests;
