//! Who-is-on-call throughput: `Schedule::on_call` evaluated every 5 minutes
//! over a year for a schedule with 3 layers (one with business-hour restrictions, one with
//! night windows that wrap past midnight) and 20 overrides, in Europe/Berlin so both DST changes
//! are crossed. Prints evaluations per second. Run with `cargo bench --bench oncall`.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Duration, Utc};
use pagerbox::schedule::{parse_local, Layer, Override, OverrideSource, Schedule};

fn layer(name: &str, users: &[&str], shift: &str, start: &str, restrictions: &[&str]) -> Layer {
    Layer::new(
        name,
        users.iter().map(|u| u.to_string()).collect(),
        shift.parse().expect("shift"),
        parse_local(start).expect("start"),
        restrictions
            .iter()
            .map(|r| r.parse().expect("restriction"))
            .collect(),
    )
    .expect("layer")
}

fn main() {
    let year_start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
    let overrides: Vec<Override> = (0..20)
        .map(|i| {
            let from = year_start + Duration::days(i * 18) + Duration::hours(i % 24);
            Override::new(
                (i % 2 == 1).then_some(i),
                format!("sub{i}"),
                from,
                from + Duration::hours(6 + i),
                if i % 2 == 1 {
                    OverrideSource::Runtime
                } else {
                    OverrideSource::Config
                },
            )
            .expect("override")
        })
        .collect();
    let (config, runtime): (Vec<Override>, Vec<Override>) = overrides
        .into_iter()
        .partition(|o| o.source == OverrideSource::Config);
    let schedule = Schedule::new(
        "primary",
        "Primary",
        chrono_tz::Europe::Berlin,
        vec![
            layer(
                "weekly",
                &["alice", "bob", "carol", "dave"],
                "1w",
                "2019-01-07T09:00",
                &[],
            ),
            layer(
                "business hours",
                &["erin", "frank"],
                "1d",
                "2024-01-01T09:00",
                &["Mon-Fri 09:00-18:00"],
            ),
            layer(
                "nights",
                &["gina", "hank", "ivan"],
                "12h",
                "2025-06-01T22:00",
                &["Mon-Sun 22:00-06:00"],
            ),
        ],
        config,
    )
    .expect("schedule");

    let step = Duration::minutes(5);
    let evaluations = 365 * 24 * 12;
    // One warm-up pass, then the best of three timed passes.
    let mut best = f64::INFINITY;
    let mut covered = 0usize;
    for pass in 0..4 {
        let started = Instant::now();
        covered = 0;
        for i in 0..evaluations {
            let at = year_start + step * i;
            if black_box(schedule.on_call(black_box(at), &runtime)).is_some() {
                covered += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        if pass > 0 {
            best = best.min(secs);
        }
    }
    println!(
        "on_call: {evaluations} evaluations (every 5 min over 2026; 3 layers, 20 overrides) in {:.3} s: {:.0} evaluations/second; someone on call at {covered} of them",
        best,
        f64::from(evaluations) / best
    );

    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let started = Instant::now();
        for i in 0..evaluations {
            let at = year_start + step * i;
            black_box(schedule.user_at(black_box(at), &runtime));
        }
        best = best.min(started.elapsed().as_secs_f64());
    }
    println!(
        "user_at: {evaluations} evaluations (who only, no from/until) in {:.3} s: {:.0} evaluations/second",
        best,
        f64::from(evaluations) / best
    );

    let started = Instant::now();
    let shifts = schedule.shifts(year_start, year_start + Duration::days(365), &runtime);
    println!(
        "shifts: whole year ({} shifts) in {:.3} ms",
        shifts.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
}
