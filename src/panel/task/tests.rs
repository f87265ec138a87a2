//! The panel task driven through the fake backend with paused time.
//!
//! With `start_paused`, the runtime jumps to the next timer whenever every task is idle, so a
//! `sleep` in the test lets the panel task run all of its own deadlines in order, and the
//! fake stamps each write with the exact virtual time.

use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{GpioBackend, GpioConfig};
use crate::panel::{spawn_with, FakePanel, PanelEvent, PanelState};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

struct Rig {
    fake: FakePanel,
    state: watch::Sender<PanelState>,
    events: mpsc::Receiver<PanelEvent>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    t0: Instant,
}

fn config(long_press: Option<Duration>, buzzer: bool) -> GpioConfig {
    GpioConfig {
        backend: GpioBackend::Fake,
        button_pin: 17,
        button_active_low: true,
        long_press,
        led_pin: 27,
        buzzer_pin: buzzer.then_some(22),
        buzzer_after: secs(600),
    }
}

async fn rig_with(cfg: GpioConfig, initial: PanelState) -> Rig {
    let (fake, parts) = FakePanel::new();
    let (state, rx) = watch::channel(initial);
    let shutdown = CancellationToken::new();
    let t0 = Instant::now();
    let buzzer = cfg.buzzer_pin.map(|_| parts.buzzer);
    let (events, task) = spawn_with(
        parts.led,
        buzzer,
        parts.button,
        &cfg,
        rx,
        shutdown.clone(),
        &TaskTracker::new(),
    );
    // Let the task start (no virtual time passes).
    tokio::task::yield_now().await;
    Rig {
        fake,
        state,
        events,
        shutdown,
        task,
        t0,
    }
}

async fn rig(initial: PanelState) -> Rig {
    rig_with(config(Some(secs(3)), true), initial).await
}

fn unacked(n: usize) -> PanelState {
    PanelState {
        open_unacked: n,
        oldest_unacked_age: Some(Duration::ZERO),
        ..PanelState::default()
    }
}

fn acked(n: usize) -> PanelState {
    PanelState {
        open_acked: n,
        ..PanelState::default()
    }
}

impl Rig {
    /// LED writes as (ms since start, level).
    fn led(&self) -> Vec<(u64, bool)> {
        self.rel(self.fake.led_writes())
    }

    fn buzzer(&self) -> Vec<(u64, bool)> {
        self.rel(self.fake.buzzer_writes())
    }

    fn rel(&self, writes: Vec<crate::panel::Write>) -> Vec<(u64, bool)> {
        writes
            .iter()
            .map(|w| ((w.at - self.t0).as_millis() as u64, w.on))
            .collect()
    }

    async fn at(&self, offset: Duration) {
        sleep_until(self.t0 + offset).await;
    }

    /// The next event within `within`, with its time since start.
    async fn event(&mut self, within: Duration) -> Option<(u64, PanelEvent)> {
        let ev = timeout(within, self.events.recv()).await.ok()??;
        Some(((Instant::now() - self.t0).as_millis() as u64, ev))
    }
}

/// Expected blink writes: on at `from`, toggling every `half` until before `until`.
fn blink(from: u64, half: u64, until: u64) -> Vec<(u64, bool)> {
    (0..)
        .map(|i| (from + i * half, i % 2 == 0))
        .take_while(|(t, _)| *t < until)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn led_off_when_nothing_open_and_task_sleeps() {
    let r = rig(PanelState::default()).await;
    let waits_before = r.fake.button_waits();
    r.at(secs(3600)).await;
    assert_eq!(
        r.led(),
        vec![(0, false)],
        "one initial off write, nothing else"
    );
    assert!(r.buzzer().iter().all(|(_, on)| !on));
    let woke = r.fake.button_waits() - waits_before;
    assert!(woke <= 2, "task woke {woke} times in an idle hour");
}

#[tokio::test(start_paused = true)]
async fn led_steady_when_everything_acked_and_task_sleeps() {
    let r = rig(acked(2)).await;
    let waits_before = r.fake.button_waits();
    r.at(secs(3600)).await;
    assert_eq!(r.led(), vec![(0, false), (0, true)]);
    let woke = r.fake.button_waits() - waits_before;
    assert!(woke <= 2, "task woke {woke} times in a steady hour");
}

#[tokio::test(start_paused = true)]
async fn led_slow_blinks_while_unacked() {
    let r = rig(PanelState {
        open_acked: 3,
        ..unacked(1)
    })
    .await;
    r.at(ms(10_500)).await;
    let mut want = vec![(0, false)];
    want.extend(blink(0, 1000, 10_500));
    assert_eq!(r.led(), want, "1 s on / 1 s off, starting on");
    // Each blink costs one wake-up: about 10 in 10 s, not thousands.
    assert!(r.fake.button_waits() <= 13, "{}", r.fake.button_waits());
}

#[tokio::test(start_paused = true)]
async fn led_fast_blinks_when_impaired_whatever_else_is_open() {
    let r = rig(PanelState {
        impaired: true,
        open_acked: 1,
        ..unacked(2)
    })
    .await;
    r.at(ms(1_060)).await;
    let mut want = vec![(0, false)];
    want.extend(blink(0, 125, 1_060));
    assert_eq!(r.led(), want, "125 ms on / 125 ms off");

    // Impaired with nothing open still fast-blinks (the box cannot page).
    let r = rig(PanelState {
        impaired: true,
        ..PanelState::default()
    })
    .await;
    r.at(ms(300)).await;
    assert_eq!(
        r.led(),
        vec![(0, false), (0, true), (125, false), (250, true)]
    );
}

#[tokio::test(start_paused = true)]
async fn state_change_mid_pattern_switches_at_once() {
    let r = rig(unacked(1)).await;
    // Mid "off" phase of the slow blink: everything acknowledged -> steady at once.
    r.at(ms(1_500)).await;
    r.state.send_replace(acked(1));
    // LED steady on: impaired -> fast blink from now (already on, so the first write is the
    // first "off" 125 ms later).
    r.at(ms(3_200)).await;
    r.state.send_replace(PanelState {
        impaired: true,
        ..acked(1)
    });
    // Mid "on" phase of the fast blink: all resolved, nothing impaired -> off at once.
    r.at(ms(3_460)).await;
    r.state.send_replace(PanelState::default());
    r.at(secs(60)).await;
    assert_eq!(
        r.led(),
        vec![
            (0, false),
            (0, true),
            (1_000, false),
            (1_500, true),
            (3_325, false),
            (3_450, true),
            (3_460, false),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn same_pattern_on_new_state_keeps_the_rhythm() {
    let r = rig(unacked(1)).await;
    r.at(ms(1_500)).await;
    r.state.send_replace(unacked(2));
    r.at(ms(4_500)).await;
    let mut want = vec![(0, false)];
    want.extend(blink(0, 1000, 4_500));
    assert_eq!(
        r.led(),
        want,
        "a second incident does not restart the blink"
    );
}

#[tokio::test(start_paused = true)]
async fn short_press_acks_all_once_released() {
    let mut r = rig(unacked(1)).await;
    r.at(ms(1_000)).await;
    r.fake.press();
    r.at(ms(1_300)).await;
    r.fake.release();
    assert_eq!(r.event(secs(5)).await, Some((1_350, PanelEvent::AckAll)));
    assert_eq!(r.event(secs(10)).await, None, "exactly one event");
}

#[tokio::test(start_paused = true)]
async fn bouncy_press_gives_exactly_one_short_press() {
    let mut r = rig(unacked(1)).await;
    r.at(ms(1_000)).await;
    for (i, t) in [1_000u64, 1_004, 1_009, 1_015, 1_022].iter().enumerate() {
        r.at(ms(*t)).await;
        r.fake.set_button(i % 2 == 0);
    }
    // Stable down from 1 022; bouncy release from 1 400.
    for (i, t) in [1_400u64, 1_403, 1_410].iter().enumerate() {
        r.at(ms(*t)).await;
        r.fake.set_button(i % 2 == 1);
    }
    assert_eq!(r.event(secs(5)).await, Some((1_460, PanelEvent::AckAll)));
    assert_eq!(r.event(secs(10)).await, None, "exactly one event");
}

#[tokio::test(start_paused = true)]
async fn glitch_shorter_than_debounce_gives_nothing() {
    let mut r = rig(unacked(1)).await;
    r.at(ms(1_000)).await;
    r.fake.press();
    r.at(ms(1_030)).await;
    r.fake.release();
    assert_eq!(r.event(secs(10)).await, None);
}

#[tokio::test(start_paused = true)]
async fn long_press_resolves_at_threshold_while_still_held() {
    let mut r = rig(acked(1)).await;
    r.at(ms(1_000)).await;
    r.fake.press();
    assert_eq!(
        r.event(secs(10)).await,
        Some((4_000, PanelEvent::ResolveAcked)),
        "fires 3 s after the press began, button still down"
    );
    r.at(ms(6_000)).await;
    r.fake.release();
    assert_eq!(
        r.event(secs(10)).await,
        None,
        "release after a long press is silent"
    );
}

#[tokio::test(start_paused = true)]
async fn release_just_before_long_threshold_is_a_short_press() {
    let mut r = rig(acked(1)).await;
    r.at(ms(1_000)).await;
    r.fake.press();
    r.at(ms(3_990)).await;
    r.fake.release();
    assert_eq!(r.event(secs(10)).await, Some((4_040, PanelEvent::AckAll)));
    assert_eq!(r.event(secs(10)).await, None);
}

#[tokio::test(start_paused = true)]
async fn long_press_disabled_makes_a_long_hold_a_short_press() {
    let mut r = rig_with(config(None, false), unacked(1)).await;
    r.at(ms(1_000)).await;
    r.fake.press();
    assert_eq!(r.event(secs(10)).await, None, "nothing while held");
    r.at(ms(20_000)).await;
    r.fake.release();
    assert_eq!(r.event(secs(1)).await, Some((20_050, PanelEvent::AckAll)));
}

#[tokio::test(start_paused = true)]
async fn button_held_at_start_is_not_a_press() {
    let (fake, parts) = FakePanel::new();
    fake.press();
    let (_state, rx) = watch::channel(unacked(1));
    let cfg = config(Some(secs(3)), false);
    let (mut events, _task) = spawn_with(
        parts.led,
        None::<crate::panel::FakeOutput>,
        parts.button,
        &cfg,
        rx,
        CancellationToken::new(),
        &TaskTracker::new(),
    );
    sleep(secs(10)).await;
    fake.release();
    assert!(timeout(secs(10), events.recv()).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn buzzer_sounds_only_after_buzzer_after_and_stops_at_ack() {
    let r = rig(unacked(1)).await;
    r.at(secs(599)).await;
    assert_eq!(
        r.buzzer(),
        vec![(0, false)],
        "silent for the first 10 minutes"
    );
    r.at(ms(605_100)).await;
    r.state.send_replace(acked(1));
    r.at(secs(700)).await;
    let mut want = vec![(0, false)];
    // 0.5 s on / 2 s off from 600 s; acknowledged at 605.1 s, during the third beep.
    want.extend([
        (600_000, true),
        (600_500, false),
        (602_500, true),
        (603_000, false),
        (605_000, true),
        (605_100, false),
    ]);
    assert_eq!(r.buzzer(), want);
    assert!(!r.fake.buzzer_is_on());
}

#[tokio::test(start_paused = true)]
async fn buzzer_counts_from_the_incident_age_not_from_publication() {
    let r = rig(PanelState {
        open_unacked: 1,
        oldest_unacked_age: Some(secs(590)),
        ..PanelState::default()
    })
    .await;
    r.at(secs(11)).await;
    assert_eq!(
        r.buzzer(),
        vec![(0, false), (10_000, true), (10_500, false)]
    );

    // Already older than buzzer_after (e.g. after a reboot): sounds at once.
    let r = rig(PanelState {
        open_unacked: 1,
        oldest_unacked_age: Some(secs(3600)),
        ..PanelState::default()
    })
    .await;
    r.at(ms(100)).await;
    assert_eq!(r.buzzer(), vec![(0, false), (0, true)]);
}

#[tokio::test(start_paused = true)]
async fn buzzer_republished_state_keeps_sounding_without_restart() {
    let r = rig(unacked(1)).await;
    r.at(ms(601_000)).await;
    // A second incident arrives; the oldest is still 601 s old.
    r.state.send_replace(PanelState {
        open_unacked: 2,
        oldest_unacked_age: Some(ms(601_000)),
        ..PanelState::default()
    });
    r.at(ms(603_100)).await;
    assert_eq!(
        r.buzzer(),
        vec![
            (0, false),
            (600_000, true),
            (600_500, false),
            (602_500, true),
            (603_000, false)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn shutdown_switches_led_and_buzzer_off_and_ends_the_task() {
    let r = rig(PanelState {
        open_unacked: 1,
        oldest_unacked_age: Some(secs(3600)),
        ..PanelState::default()
    })
    .await;
    r.at(ms(200)).await;
    assert!(r.fake.led_is_on());
    assert!(r.fake.buzzer_is_on());
    r.shutdown.cancel();
    timeout(secs(1), r.task).await.unwrap().unwrap();
    assert!(!r.fake.led_is_on());
    assert!(!r.fake.buzzer_is_on());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_state_sender_ends_the_task_dark() {
    let r = rig(acked(1)).await;
    assert!(r.fake.led_is_on());
    drop(r.state);
    timeout(secs(1), r.task).await.unwrap().unwrap();
    assert!(!r.fake.led_is_on());
}

#[tokio::test(start_paused = true)]
async fn failing_led_does_not_stop_the_button() {
    let mut r = rig(unacked(1)).await;
    r.fake.fail_led(true);
    r.at(ms(1_000)).await;
    r.fake.press();
    r.at(ms(1_200)).await;
    r.fake.release();
    assert_eq!(r.event(secs(5)).await, Some((1_250, PanelEvent::AckAll)));
    r.fake.fail_led(false);
    r.state.send_replace(acked(1));
    r.at(ms(1_300)).await;
    assert!(r.fake.led_is_on(), "LED works again on the next change");
}

/// A button whose source is gone: every wait fails at once.
struct ClosedButton(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl crate::panel::Button for ClosedButton {
    fn is_pressed(&self) -> bool {
        false
    }

    async fn next_change(&mut self) -> Result<bool, crate::panel::PanelError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(crate::panel::PanelError::ButtonClosed)
    }
}

#[tokio::test(start_paused = true)]
async fn lost_button_source_leaves_the_led_running_without_spinning() {
    let (fake, parts) = FakePanel::new();
    let polls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (_state, rx) = watch::channel(unacked(1));
    let t0 = Instant::now();
    let cfg = config(Some(secs(3)), false);
    let (_events, _task) = spawn_with(
        parts.led,
        None::<crate::panel::FakeOutput>,
        ClosedButton(polls.clone()),
        &cfg,
        rx,
        CancellationToken::new(),
        &TaskTracker::new(),
    );
    sleep_until(t0 + ms(4_500)).await;
    assert_eq!(polls.load(std::sync::atomic::Ordering::Relaxed), 1);
    let levels: Vec<(u64, bool)> = fake
        .led_writes()
        .iter()
        .map(|w| ((w.at - t0).as_millis() as u64, w.on))
        .collect();
    let mut want = vec![(0, false)];
    want.extend(blink(0, 1000, 4_500));
    assert_eq!(levels, want);
}
