//! `pagerbox panel test`: exercise the wiring by hand.
//!
//! Cycles the LED through every pattern the daemon uses (announcing each on stdout), beeps
//! the buzzer once per cycle if one is configured, and prints every debounced button press,
//! release, short press and long press as it happens, with the time since start. Nothing is
//! acknowledged: the daemon is not involved. Stops on Ctrl-C or after `--seconds`, switching
//! everything off.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

use super::button::{ButtonTracker, Gesture};
use super::pattern::{Driver, Pattern, FAST_BLINK, SLOW_BLINK};
use super::{Button, Output, Settings};
use crate::config::{GpioBackend, GpioConfig};

/// Arguments of `pagerbox panel test` (the config file comes from the global `--config`).
#[derive(Debug, Clone, clap::Args)]
pub struct PanelTestArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "N")]
    pub seconds: Option<u64>,
}

/// One step of the LED demonstration.
struct Step {
    pattern: Pattern,
    length: Duration,
    what: &'static str,
}

/// The cycle: each daemon pattern long enough to recognise, with a dark gap before blinks.
const CYCLE: [Step; 4] = [
    Step {
        pattern: Pattern::Steady,
        length: Duration::from_secs(2),
        what: "steady on (everything open is acknowledged)",
    },
    Step {
        pattern: Pattern::Off,
        length: Duration::from_secs(1),
        what: "off (nothing open)",
    },
    Step {
        pattern: SLOW_BLINK,
        length: Duration::from_secs(4),
        what: "slow blink (something unacknowledged)",
    },
    Step {
        pattern: FAST_BLINK,
        length: Duration::from_secs(2),
        what: "fast blink (paging impaired)",
    },
];

/// How long the buzzer beeps at the start of each cycle.
const TEST_BEEP: Duration = Duration::from_millis(300);

/// Entry point of `pagerbox panel test`: opens the configured backend and runs the
/// exercise until Ctrl-C or `seconds`. Fails when the backend is `none` or the hardware
/// cannot be opened (e.g. not a Raspberry Pi).
pub async fn run_test(cfg: &GpioConfig, seconds: Option<u64>) -> anyhow::Result<ExitCode> {
    let limit = seconds.map(Duration::from_secs);
    let stop = async {
        // If the signal handler cannot be installed we still stop at `--seconds`.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut out = std::io::stdout();
    match cfg.backend {
        GpioBackend::None => {
            anyhow::bail!("gpio.backend is \"none\": there is no panel to test")
        }
        #[cfg(any(test, feature = "testkit"))]
        GpioBackend::Fake => {
            let (_fake, parts) = super::FakePanel::new();
            let buzzer = cfg.buzzer_pin.map(|_| parts.buzzer);
            exercise(parts.led, buzzer, parts.button, cfg, limit, stop, &mut out).await?;
        }
        #[cfg(not(any(test, feature = "testkit")))]
        GpioBackend::Fake => anyhow::bail!("gpio.backend \"fake\" exists only in test builds"),
        GpioBackend::Rppal => open_and_exercise_rppal(cfg, limit, stop, &mut out).await?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(target_os = "linux")]
async fn open_and_exercise_rppal(
    cfg: &GpioConfig,
    limit: Option<Duration>,
    stop: impl Future<Output = ()>,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let hw = super::rppal::RppalPanel::open(cfg).context("cannot open the GPIO panel")?;
    writeln!(
        out,
        "panel test: LED on BCM {}, button on BCM {} ({}){}",
        cfg.led_pin,
        cfg.button_pin,
        if cfg.button_active_low {
            "active low, pull-up"
        } else {
            "active high, pull-down"
        },
        cfg.buzzer_pin
            .map(|p| format!(", buzzer on BCM {p}"))
            .unwrap_or_default()
    )?;
    exercise(hw.led, hw.buzzer, hw.button, cfg, limit, stop, out).await
}

#[cfg(not(target_os = "linux"))]
async fn open_and_exercise_rppal(
    _cfg: &GpioConfig,
    _limit: Option<Duration>,
    _stop: impl Future<Output = ()>,
    _out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    Err(super::PanelError::Unsupported { backend: "rppal" }).context("cannot open the GPIO panel")
}

/// The exercise on any hardware: LED cycle, buzzer beep, button report on `out`.
// Long on purpose: one timed loop (LED steps, beeps, button events) whose state spans iterations.
async fn exercise<L: Output, B: Output, K: Button>(
    led: L,
    buzzer: Option<B>,
    mut button: K,
    cfg: &GpioConfig,
    limit: Option<Duration>,
    stop: impl Future<Output = ()>,
    out: &mut (dyn std::io::Write + Send),
) -> anyhow::Result<()> {
    let settings = Settings::from_config(cfg);
    let start = Instant::now();
    // `None` (no end) also for a limit past what the clock can count (`--seconds` huge).
    let end = limit.and_then(|l| start.checked_add(l));
    let mut led = Driver::new(led, "LED");
    let mut buzzer = buzzer.map(|b| Driver::new(b, "buzzer"));
    let mut tracker = ButtonTracker::new(settings.long_press, button.is_pressed(), start);
    if button.is_pressed() {
        writeln!(
            out,
            "warning: the button reads pressed at start (held, or wired with the wrong polarity?)"
        )?;
    }
    writeln!(
        out,
        "press the button: short press acknowledges, {}; Ctrl-C to stop",
        match settings.long_press {
            Some(d) => format!("holding {} s resolves", d.as_secs_f64()),
            None => "long press is disabled".to_string(),
        }
    )?;
    let mut step = 0;
    let mut step_end = start;
    let mut beep_end: Option<Instant> = None;
    let mut button_open = true;
    tokio::pin!(stop);

    loop {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if now >= step_end {
            let s = &CYCLE[step % CYCLE.len()];
            if step % CYCLE.len() == 0 {
                if let Some(b) = buzzer.as_mut() {
                    b.show(Pattern::Steady, now);
                    beep_end = Some(now + TEST_BEEP);
                    writeln!(out, "{} buzzer: beep", stamp(start, now))?;
                }
            }
            led.show(s.pattern, now);
            writeln!(out, "{} LED: {}", stamp(start, now), s.what)?;
            step_end = now + s.length;
            step += 1;
        }
        if beep_end.is_some_and(|e| now >= e) {
            if let Some(b) = buzzer.as_mut() {
                b.show(Pattern::Off, now);
            }
            beep_end = None;
        }
        let deadline = [
            Some(step_end),
            end,
            beep_end,
            led.deadline(),
            tracker.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(step_end);

        tokio::select! {
            biased;
            _ = &mut stop => break,
            change = button.next_change(), if button_open => match change {
                Ok(pressed) => tracker.on_raw(pressed, Instant::now()),
                Err(err) => {
                    writeln!(out, "button input lost: {err}")?;
                    button_open = false;
                }
            },
            _ = tokio::time::sleep_until(deadline) => {}
        }

        let now = Instant::now();
        while let Some(g) = tracker.poll(now) {
            let line = match g {
                Gesture::Pressed => "button down".to_string(),
                Gesture::LongPress => "long press -> would resolve acknowledged incidents".into(),
                Gesture::Released { held, short: true } => format!(
                    "button up after {:.2} s: short press -> would acknowledge all",
                    held.as_secs_f64()
                ),
                Gesture::Released { held, short: false } => {
                    format!("button up after {:.2} s", held.as_secs_f64())
                }
            };
            writeln!(out, "{} {line}", stamp(start, now))?;
        }
        led.tick(now);
    }

    led.off();
    if let Some(b) = buzzer.as_mut() {
        b.off();
    }
    writeln!(out, "panel test done; LED and buzzer off")?;
    out.flush()?;
    Ok(())
}

fn stamp(start: Instant, now: Instant) -> String {
    format!("[{:7.2}s]", (now - start).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::FakePanel;

    fn cfg() -> GpioConfig {
        GpioConfig {
            backend: GpioBackend::Fake,
            button_pin: 17,
            button_active_low: true,
            long_press: Some(Duration::from_secs(3)),
            led_pin: 27,
            buzzer_pin: Some(22),
            buzzer_after: Duration::from_secs(600),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exercise_cycles_patterns_and_reports_presses() {
        let (fake, parts) = FakePanel::new();
        let t0 = Instant::now();
        let driver = {
            let fake = fake.clone();
            async move {
                // Short press at 1 s (bouncy), long hold from 5 s to 9 s.
                tokio::time::sleep_until(t0 + Duration::from_millis(1000)).await;
                fake.press();
                tokio::time::sleep(Duration::from_millis(5)).await;
                fake.release();
                tokio::time::sleep(Duration::from_millis(5)).await;
                fake.press();
                tokio::time::sleep_until(t0 + Duration::from_millis(1400)).await;
                fake.release();
                tokio::time::sleep_until(t0 + Duration::from_secs(5)).await;
                fake.press();
                tokio::time::sleep_until(t0 + Duration::from_secs(9)).await;
                fake.release();
            }
        };
        tokio::spawn(driver);
        let mut out = Vec::new();
        exercise(
            parts.led,
            Some(parts.buzzer),
            parts.button,
            &cfg(),
            Some(Duration::from_secs(12)),
            std::future::pending(),
            &mut out,
        )
        .await
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let expected = [
            "[   0.00s] buzzer: beep",
            "[   0.00s] LED: steady on (everything open is acknowledged)",
            "[   1.06s] button down",
            "[   1.45s] button up after 0.39 s: short press -> would acknowledge all",
            "[   2.00s] LED: off (nothing open)",
            "[   3.00s] LED: slow blink (something unacknowledged)",
            "[   5.05s] button down",
            "[   7.00s] LED: fast blink (paging impaired)",
            "[   8.00s] long press -> would resolve acknowledged incidents",
            "[   9.00s] buzzer: beep",
            "[   9.00s] LED: steady on (everything open is acknowledged)",
            "[   9.05s] button up after 4.00 s",
            "panel test done; LED and buzzer off",
        ];
        for want in expected {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
        // Everything off at the end, and the buzzer beeped for TEST_BEEP.
        assert!(!fake.led_is_on());
        assert!(!fake.buzzer_is_on());
        assert!(fake.buzzer_on_at(t0 + Duration::from_millis(100)));
        assert!(!fake.buzzer_on_at(t0 + Duration::from_millis(400)));
    }

    /// `--seconds` past what the clock can count runs until stopped instead of panicking.
    #[tokio::test(start_paused = true)]
    async fn a_limit_too_long_to_count_runs_until_stopped() {
        let (_fake, parts) = FakePanel::new();
        let mut out = Vec::new();
        exercise(
            parts.led,
            Some(parts.buzzer),
            parts.button,
            &cfg(),
            Some(Duration::from_secs(u64::MAX)),
            tokio::time::sleep(Duration::from_secs(2)),
            &mut out,
        )
        .await
        .unwrap();
        assert!(String::from_utf8(out).unwrap().contains("panel test done"));
    }

    #[tokio::test]
    async fn backend_none_is_an_error_not_a_silent_success() {
        let cfg = GpioConfig {
            backend: GpioBackend::None,
            ..cfg()
        };
        let err = run_test(&cfg, Some(1)).await.unwrap_err();
        assert!(err.to_string().contains("no panel to test"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn run_test_stops_after_seconds() {
        let t0 = Instant::now();
        let code = run_test(&cfg(), Some(5)).await.unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
    }
}
