//! The task that runs self-tests, one at a time: on demand through [`SelftestHandle`], and on
//! `[selftest] schedule`.
//!
//! A run asks the modem task for a fresh status (AT, SIM, registration, operator, signal),
//! checks the credit by USSD where configured, then queues a real test SMS in the durable
//! outbox (so it takes the same path as a page: claim, `AT+CMGS`, retry, delivery report) and
//! follows that row to `sent` and `delivered`. With `expect_reply_from` it waits for an SMS
//! from that number carrying the run's code: the daemon's modem event loop offers every
//! incoming SMS to the [`Inbox`] first, which takes only the awaited reply (so the ack handler
//! never answers it). A test SMS the run gave up on is withdrawn from the outbox.
//!
//! Steps after a failed AT/SIM/registration step are skipped; signal and credit failures fail
//! the run but the SMS is still tried (it may well get through). Every run is stored; a failed
//! scheduled run raises [`super::RUN_KEY`], a good run resolves it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::monitor::{check_credit, credit_verdict, CreditVerdict};
use super::{set_incident, Outcome, Run, SelftestError, Step, Target, Trigger, RUN_KEY};
use crate::clock::Clock;
use crate::config::{Config, PhoneNumber};
use crate::incident::{Channel, Severity};
use crate::modem::at::SimState;
use crate::modem::Modem;
use crate::store::outbox::{NewPage, OutboxState, PageKind, RowState};
use crate::store::Store;

/// Runs that may wait while one runs.
const QUEUE: usize = 4;
/// Incoming SMS offered while a reply is awaited, not yet looked at by the run.
const INBOX: usize = 16;
/// How often an outbox row is looked at besides store commits.
const POLL: Duration = Duration::from_millis(250);
/// Longest sleep before the schedule is looked at again.
const RECHECK: Duration = Duration::from_secs(60);

enum Command {
    RunNow {
        reply: oneshot::Sender<Result<Run, SelftestError>>,
    },
}

/// The handle to the self-test task. Cheap to clone.
#[derive(Clone)]
pub struct SelftestHandle {
    tx: mpsc::Sender<Command>,
}

impl SelftestHandle {
    /// Runs a self-test now (after any run in progress) and returns it with every step.
    /// [`SelftestError::Busy`] when several are queued already.
    pub async fn run_now(&self) -> Result<Run, SelftestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Command::RunNow { reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SelftestError::Busy,
                mpsc::error::TrySendError::Closed(_) => SelftestError::Stopped,
            })?;
        rx.await.map_err(|_| SelftestError::Stopped)?
    }
}

/// The reply a run is waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    from: PhoneNumber,
    code: String,
    country_code: String,
}

/// Where the daemon's modem event loop offers incoming SMS; see the module docs.
#[derive(Clone)]
pub struct Inbox {
    expect: watch::Receiver<Option<Expected>>,
    tx: mpsc::Sender<(String, String)>,
}

impl Inbox {
    /// Takes the SMS if it is the reply a run awaits (from the expected number, carrying the
    /// code); `false` means "not mine, handle it as usual".
    pub fn offer(&self, from: &str, text: &str) -> bool {
        let Some(e) = self.expect.borrow().clone() else {
            return false;
        };
        let readings = PhoneNumber::readings(from, &e.country_code);
        if !readings.contains(&e.from) || !text.contains(&e.code) {
            return false;
        }
        // A full queue means the run already has plenty to look at; the reply is still ours.
        let _ = self.tx.try_send((from.to_string(), text.to_string()));
        true
    }
}

/// What the task needs.
pub struct Deps {
    pub store: Store,
    pub config: watch::Receiver<Arc<Config>>,
    pub modem: Modem,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
}

/// Starts nothing yet: returns the handle, the inbox and the task's future (for the daemon's
/// tracker). The task ends on shutdown or when the last handle is dropped.
pub fn spawn(
    deps: Deps,
) -> (
    SelftestHandle,
    Inbox,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (expect_tx, expect_rx) = watch::channel(None);
    let (reply_tx, reply_rx) = mpsc::channel(INBOX);
    let runner = Runner {
        deps,
        commands: rx,
        expect: expect_tx,
        replies: reply_rx,
    };
    (
        SelftestHandle { tx },
        Inbox {
            expect: expect_rx,
            tx: reply_tx,
        },
        runner.run(),
    )
}

struct Runner {
    deps: Deps,
    commands: mpsc::Receiver<Command>,
    expect: watch::Sender<Option<Expected>>,
    replies: mpsc::Receiver<(String, String)>,
}

/// The steps of one run as they are made.
struct Steps {
    start: Instant,
    list: Vec<Step>,
}

impl Steps {
    fn push(&mut self, id: &str, name: &str, outcome: Outcome, detail: String, began: Instant) {
        let now = Instant::now();
        self.list.push(Step {
            id: id.into(),
            name: name.into(),
            outcome,
            detail,
            ms: now.duration_since(began).as_millis() as u64,
            at_ms: now.duration_since(self.start).as_millis() as u64,
        });
    }

    fn check(&mut self, id: &str, name: &str, ok: bool, detail: String, began: Instant) -> bool {
        let o = if ok { Outcome::Ok } else { Outcome::Failed };
        self.push(id, name, o, detail, began);
        ok
    }

    fn skip(&mut self, id: &str, name: &str, why: &str) {
        let at = Instant::now();
        self.push(id, name, Outcome::Skipped, why.into(), at);
    }
}

const AT: (&str, &str) = ("at", "modem responds (AT)");
const SIM: (&str, &str) = ("sim", "SIM ready");
const REG: (&str, &str) = ("registration", "registered (operator)");
const SIGNAL: (&str, &str) = ("signal", "signal");
const CREDIT: (&str, &str) = ("credit", "credit");
const SMS: (&str, &str) = ("sms", "test SMS submitted");
const DELIVERED: (&str, &str) = ("delivered", "delivered (status report)");
const REPLY: (&str, &str) = ("reply", "reply received");

impl Runner {
    async fn run(mut self) {
        let mut config = self.deps.config.clone();
        let mut watching = true;
        let mut last = self.deps.clock.now();
        let mut clock_steps = self.deps.clock.steps();
        loop {
            let cfg = config.borrow_and_update().clone();
            let next = cfg
                .selftest
                .schedule
                .as_ref()
                .filter(|_| cfg.selftest.enabled)
                .map(|s| s.next_after(last));
            // Look again at least every minute: the wall clock may jump (a Pi without RTC boots
            // with a stale time until NTP corrects it).
            let wait = next.map(|n| {
                (n - self.deps.clock.now())
                    .to_std()
                    .unwrap_or_default()
                    .min(RECHECK)
            });
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => break,
                c = self.commands.recv() => match c {
                    None => break,
                    Some(Command::RunNow { reply }) => {
                        let run = self.run_once(Trigger::Manual).await;
                        let _ = reply.send(Ok(run));
                    }
                },
                r = config.changed(), if watching => if r.is_err() { watching = false },
                // The clock jumped: look at the schedule again.
                _ = clock_steps.stepped(), if next.is_some() => {}
                _ = sleep_opt(wait) => {
                    let Some(due) = next.filter(|n| self.deps.clock.now() >= *n) else {
                        continue;
                    };
                    last = after_run(cfg.selftest.schedule.as_ref(), due, self.deps.clock.now());
                    let run = self.run_once(Trigger::Schedule).await;
                    if !run.ok {
                        warn!(run = run.id, failed_step = ?run.failed_step, "scheduled self-test failed");
                    }
                }
            }
        }
        self.expect.send_replace(None);
    }

    /// One self-test; stored, and the run incident raised or resolved.
    async fn run_once(&mut self, trigger: Trigger) -> Run {
        let config = self.deps.config.borrow().clone();
        let st = &config.selftest;
        let started_at = self.deps.clock.now();
        let code = format!("{:06}", fastrand::u32(0..1_000_000));
        let mut s = Steps {
            start: Instant::now(),
            list: Vec::new(),
        };
        info!(trigger = trigger.as_str(), "self-test started");

        let usable = self.modem_steps(st, &mut s).await;

        if let Some(ussd) = &st.credit_ussd {
            if usable {
                self.credit_step(&config, ussd, &mut s).await;
            } else {
                s.skip(CREDIT.0, CREDIT.1, "modem cannot page");
            }
        }

        if let Some(target) = &st.target {
            if usable {
                self.sms_steps(&config, target, &code, &mut s).await;
            } else {
                s.skip(SMS.0, SMS.1, "modem cannot page");
                if config.modem.delivery_reports {
                    s.skip(DELIVERED.0, DELIVERED.1, "no SMS sent");
                }
                if st.expect_reply_from.is_some() {
                    s.skip(REPLY.0, REPLY.1, "no SMS sent");
                }
            }
        }

        let failed_step = s
            .list
            .iter()
            .find(|x| x.outcome == Outcome::Failed)
            .map(|x| x.id.clone());
        let mut run = Run {
            id: 0,
            trigger,
            code,
            started_at,
            finished_at: self.deps.clock.now(),
            ok: failed_step.is_none(),
            failed_step,
            steps: s.list,
        };
        let row = run.clone();
        match self.deps.store.record_selftest_run(row).await {
            Ok(id) => run.id = id,
            Err(e) => error!(error = %e, "cannot store the self-test run"),
        }
        let incident = run_incident(&run, trigger, self.deps.shutdown.is_cancelled());
        if let Some(i) = incident {
            if let Err(e) = set_incident(&self.deps.store, &config, RUN_KEY, i).await {
                error!(error = %e, "cannot record the self-test incident");
            }
        }
        info!(run = run.id, ok = run.ok, failed_step = ?run.failed_step, "self-test finished");
        run
    }

    /// Modem, SIM, registration, signal: one fresh status from the modem task. True when the
    /// modem can page (SIM ready and registered).
    async fn modem_steps(
        &self,
        st: &crate::config::selftest::SelftestConfig,
        s: &mut Steps,
    ) -> bool {
        let t = Instant::now();
        match self.deps.modem.status().await {
            Err(e) => {
                s.check(AT.0, AT.1, false, e.to_string(), t);
                for (id, name) in [SIM, REG, SIGNAL] {
                    s.skip(id, name, "modem not answering");
                }
                false
            }
            Ok(m) => {
                let ident = format!("{} {}", m.manufacturer, m.model).trim().to_string();
                s.check(AT.0, AT.1, true, ident, t);
                let t = Instant::now();
                let sim_ok = s.check(SIM.0, SIM.1, m.sim == SimState::Ready, m.sim.describe(), t);
                let reg_ok = if sim_ok {
                    let t = Instant::now();
                    let reg = m.registration.is_registered();
                    let detail = match (&m.operator, reg) {
                        (Some(op), true) => format!("{op} ({})", m.registration),
                        _ => m.registration.to_string(),
                    };
                    s.check(REG.0, REG.1, reg, detail, t)
                } else {
                    s.skip(REG.0, REG.1, "SIM not ready");
                    false
                };
                if reg_ok {
                    let t = Instant::now();
                    let (ok, detail) = match m.signal_dbm {
                        Some(d) if d >= st.min_signal_dbm => (true, format!("{d} dBm")),
                        Some(d) => (false, format!("{d} dBm, below {} dBm", st.min_signal_dbm)),
                        None => (false, "no signal".to_string()),
                    };
                    s.check(SIGNAL.0, SIGNAL.1, ok, detail, t);
                } else {
                    s.skip(SIGNAL.0, SIGNAL.1, "not registered");
                }
                sim_ok && reg_ok
            }
        }
    }

    /// The balance over USSD, and the low-credit incident raised or resolved from it.
    async fn credit_step(&self, config: &Config, ussd: &str, s: &mut Steps) {
        let st = &config.selftest;
        let t = Instant::now();
        let res = check_credit(&self.deps.modem, ussd, st).await;
        let verdict = credit_verdict(&res, st.credit_min);
        let ok = matches!(verdict, CreditVerdict::Fine(_));
        s.check(CREDIT.0, CREDIT.1, ok, verdict.describe(), t);
        verdict
            .apply(&self.deps.store, config)
            .await
            .unwrap_or_else(|e| error!(error = %e, "cannot record the credit incident"));
    }

    /// The test SMS: queue it, follow its outbox row to sent and delivered, await the reply.
    // Long on purpose: queued, sent, delivered, answered: each step waits on the one before.
    async fn sms_steps(&mut self, config: &Config, target: &Target, code: &str, s: &mut Steps) {
        let st = &config.selftest;
        let t = Instant::now();
        let to = match self.resolve(config, target).await {
            Ok(n) => n,
            Err(why) => {
                s.check(SMS.0, SMS.1, false, why, t);
                return;
            }
        };
        // Drop replies left over from an earlier run, then say what we wait for before the
        // SMS can possibly be answered.
        while self.replies.try_recv().is_ok() {}
        if let Some(from) = &st.expect_reply_from {
            self.expect.send_replace(Some(Expected {
                from: from.clone(),
                code: code.to_string(),
                country_code: config.daemon.country_code.clone(),
            }));
        }
        let local = self
            .deps
            .clock
            .now()
            .with_timezone(&config.daemon.time_zone)
            .format("%Y-%m-%d %H:%M %Z");
        let body = if st.expect_reply_from.is_some() {
            format!("pagerbox self-test {code} ({local}): paging works. Reply {code} to close the loop.")
        } else {
            format!("pagerbox self-test {code} ({local}): paging works. No action needed.")
        };
        let address = to.as_str().to_string();
        let page = NewPage {
            kind: PageKind::Reply,
            incident_id: None,
            user_id: None,
            channel: Channel::Sms,
            address,
            subject: None,
            body,
            // Below every real page: a test never delays one.
            priority: 0,
            // Replaced by the store's own time when the row is written.
            due_at: self.deps.clock.now(),
        };
        let queued = self.deps.store.enqueue_now(page).await;
        let id = match queued {
            Ok(id) => id,
            Err(e) => {
                s.check(SMS.0, SMS.1, false, format!("cannot queue: {e}"), t);
                self.expect.send_replace(None);
                return;
            }
        };
        let sent = self
            .follow(id, st.submit_timeout, |p| p.state.was_sent())
            .await;
        let sent_ok = match sent {
            Ok(p) => s.check(
                SMS.0,
                SMS.1,
                true,
                format!(
                    "to {}, +CMGS reference {}",
                    to.masked(),
                    p.reference.unwrap_or_default()
                ),
                t,
            ),
            Err(why) => s.check(SMS.0, SMS.1, false, why, t),
        };
        if !sent_ok {
            let _ = self
                .deps
                .store
                .withdraw_pending(id, "self-test gave up on it")
                .await;
            if config.modem.delivery_reports {
                s.skip(DELIVERED.0, DELIVERED.1, "not sent");
            }
            if st.expect_reply_from.is_some() {
                s.skip(REPLY.0, REPLY.1, "not sent");
            }
            self.expect.send_replace(None);
            return;
        }
        if config.modem.delivery_reports {
            let t = Instant::now();
            match self
                .follow(id, st.delivery_timeout, |p| {
                    p.state == OutboxState::Delivered
                })
                .await
            {
                Ok(_) => s.check(
                    DELIVERED.0,
                    DELIVERED.1,
                    true,
                    "status report: delivered".into(),
                    t,
                ),
                Err(why) => s.check(DELIVERED.0, DELIVERED.1, false, why, t),
            };
        }
        if let Some(from) = &st.expect_reply_from {
            let t = Instant::now();
            let deadline = t + st.reply_timeout;
            let got = tokio::select! {
                _ = self.deps.shutdown.cancelled() => Err("shutting down".to_string()),
                _ = tokio::time::sleep_until(deadline) => Err(format!(
                    "no SMS from {} with code {code} within {}",
                    from.masked(),
                    humantime::format_duration(st.reply_timeout)
                )),
                r = self.replies.recv() => r.ok_or_else(|| "inbox closed".to_string()),
            };
            match got {
                Ok(_) => s.check(REPLY.0, REPLY.1, true, format!("from {}", from.masked()), t),
                Err(why) => s.check(REPLY.0, REPLY.1, false, why, t),
            };
            self.expect.send_replace(None);
        }
    }

    /// The number for `target` now.
    async fn resolve(&self, config: &Config, target: &Target) -> Result<PhoneNumber, String> {
        match target {
            Target::Number(n) => Ok(n.clone()),
            Target::OnCall(id) => {
                let Some(schedule) = config.schedules.iter().find(|s| &s.id == id) else {
                    return Err(format!("no schedule {id:?}"));
                };
                let now = self.deps.clock.now();
                let known = config.clone();
                let overrides = self
                    .deps
                    .store
                    .call(move |c, now| {
                        crate::escalation::engine::runtime_overrides(c, &known, now)
                    })
                    .await
                    .map_err(|e| format!("cannot read overrides: {e}"))?;
                let list = overrides.get(id).map(Vec::as_slice).unwrap_or(&[]);
                let user = schedule
                    .user_at(now, list)
                    .ok_or_else(|| format!("nobody is on call on {id:?}"))?;
                config
                    .user(user)
                    .and_then(|u| u.phone.clone())
                    .ok_or_else(|| format!("{user} (on call on {id:?}) has no phone number"))
            }
        }
    }

    /// Follows outbox row `id` until `done` holds, it failed, or `within` passed.
    async fn follow(
        &self,
        id: i64,
        within: Duration,
        done: impl Fn(&RowState) -> bool,
    ) -> Result<RowState, String> {
        let deadline = Instant::now() + within;
        let mut commits = self.deps.store.commits();
        loop {
            let p = self
                .deps
                .store
                .outbox_row(id)
                .await
                .map_err(|e| format!("store: {e}"))?
                .ok_or_else(|| "the test SMS vanished from the outbox".to_string())?;
            if done(&p) {
                return Ok(p);
            }
            if p.state.is_given_up() {
                return Err(format!(
                    "{}: {}",
                    p.state,
                    p.last_error.unwrap_or_else(|| "no reason".into())
                ));
            }
            tokio::select! {
                _ = self.deps.shutdown.cancelled() => return Err("shutting down".into()),
                _ = tokio::time::sleep_until(deadline) => {
                    let why = p
                        .last_error
                        .map(|e| format!("; last error: {e}"))
                        .unwrap_or_default();
                    return Err(format!("not done within {}{why}", humantime::format_duration(within)));
                }
                _ = commits.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// What a finished run does to the run incident: `Some(None)` resolves it, `Some(Some(..))`
/// raises it (only a scheduled run raises it), `None` leaves it alone.
fn run_incident(
    run: &Run,
    trigger: Trigger,
    cancelled: bool,
) -> Option<Option<(String, Severity, serde_json::Value)>> {
    if run.ok {
        Some(None)
    } else if cancelled {
        // Cut short by shutdown: not a finding about the paging path.
        None
    } else if trigger == Trigger::Schedule {
        let step = run
            .steps
            .iter()
            .find(|x| x.outcome == Outcome::Failed)
            .map(|x| format!("{}: {}", x.name, x.detail))
            .unwrap_or_default();
        Some(Some((
            format!("Scheduled self-test failed at {step}"),
            Severity::Error,
            serde_json::json!({ "run": run.id, "steps": run.steps }),
        )))
    } else {
        None
    }
}

/// What the next scheduled run counts from after the run due at `due` starts at `now`: the slot
/// itself when the next slot is still ahead (so the schedule does not drift by the wake-up
/// delay), else `now`. Slots missed while the clock was behind (a box without RTC booted on a
/// stale time, then NTP stepped it days ahead) are one run, not a run per slot back to back,
/// each a test SMS paid from the SIM's credit.
fn after_run(
    schedule: Option<&crate::config::test_schedule::TestSchedule>,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match schedule {
        Some(s) if s.next_after(due) > now => due,
        _ => now,
    }
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox(expect: Option<Expected>) -> (Inbox, mpsc::Receiver<(String, String)>) {
        // The value stays readable after the watch sender is dropped.
        let (_, rx) = watch::channel(expect);
        let (tx, replies) = mpsc::channel(4);
        (Inbox { expect: rx, tx }, replies)
    }

    fn expected() -> Expected {
        Expected {
            from: PhoneNumber::parse_e164("+4915100000099").unwrap(),
            code: "493021".into(),
            country_code: "49".into(),
        }
    }

    /// After the clock jumps three days ahead, an "every 15m" schedule runs once to catch up
    /// and then waits for its next slot, instead of running the 288 missed slots back to back.
    #[test]
    fn missed_slots_after_a_clock_jump_are_one_run() {
        let s = crate::config::test_schedule::TestSchedule::Every(Duration::from_secs(15 * 60));
        let booted = "2026-03-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let now = booted + chrono::Duration::days(3);
        let due = s.next_after(booted);
        assert!(due <= now, "the first slot is missed");
        let next = s.next_after(after_run(Some(&s), due, now));
        assert!(next > now, "the next run waits: {next}");
        // Woken a little late, it counts from the slot: the schedule does not drift.
        let late = due + chrono::Duration::seconds(2);
        let on_time = s.next_after(after_run(Some(&s), due, late));
        assert_eq!(on_time, due + chrono::Duration::minutes(15));
    }

    #[test]
    fn inbox_takes_only_the_awaited_reply() {
        let (i, mut replies) = inbox(Some(expected()));
        // National format from the modem is the same number.
        assert!(i.offer("015100000099", "ok 493021"));
        assert_eq!(replies.try_recv().unwrap().1, "ok 493021");
        assert!(!i.offer("+4915100000099", "42a"));
        assert!(!i.offer("+4915100000011", "493021"));
        assert!(!i.offer("Vodafone", "493021"));
        let (idle, _r) = inbox(None);
        assert!(!idle.offer("+4915100000099", "493021"));
    }
}
