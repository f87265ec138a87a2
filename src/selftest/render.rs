//! Pure: a run as the lines `pagerbox selftest` prints, one per step with its timing.

use super::{Outcome, Run};

/// The text form of a run, e.g.
///
/// ```text
///   ok    modem responds (AT)           31 ms  SIMCOM_Ltd SIMCOM_SIM800
///   FAIL  SIM ready                      0 ms  not inserted
///   skip  registered (operator)                SIM not ready
/// self-test FAILED at "SIM ready" (run 3, 0.2 s)
/// ```
pub fn render(run: &Run) -> String {
    let mut out = String::new();
    let width = run
        .steps
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0);
    for s in &run.steps {
        let (mark, time) = match s.outcome {
            Outcome::Ok => ("ok  ", format!("{:>7} ms", s.ms)),
            Outcome::Failed => ("FAIL", format!("{:>7} ms", s.ms)),
            Outcome::Skipped => ("skip", " ".repeat(10)),
        };
        out.push_str(&format!(
            "  {mark}  {:<width$}  {time}  {}\n",
            s.name, s.detail
        ));
    }
    let total = (run.finished_at - run.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    match (&run.failed_step, run.ok) {
        (_, true) => out.push_str(&format!(
            "self-test passed (run {}, {total:.1} s, code {})\n",
            run.id, run.code
        )),
        (step, false) => {
            let name = run
                .steps
                .iter()
                .find(|s| Some(&s.id) == step.as_ref())
                .map(|s| s.name.as_str())
                .unwrap_or("?");
            out.push_str(&format!(
                "self-test FAILED at \"{name}\" (run {}, {total:.1} s)\n",
                run.id
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::selftest::{Step, Trigger};
    use chrono::TimeZone;

    fn step(id: &str, name: &str, outcome: Outcome, detail: &str, ms: u64) -> Step {
        Step {
            id: id.into(),
            name: name.into(),
            outcome,
            detail: detail.into(),
            ms,
            at_ms: ms,
        }
    }

    #[test]
    fn failed_run_names_the_step_and_marks_skips() {
        let t0 = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let run = Run {
            id: 3,
            trigger: Trigger::Manual,
            code: "123456".into(),
            started_at: t0,
            finished_at: t0 + chrono::Duration::milliseconds(200),
            ok: false,
            failed_step: Some("sim".into()),
            steps: vec![
                step(
                    "at",
                    "modem responds (AT)",
                    Outcome::Ok,
                    "SIMCOM_Ltd SIMCOM_SIM800",
                    31,
                ),
                step("sim", "SIM ready", Outcome::Failed, "not inserted", 0),
                step(
                    "registration",
                    "registered (operator)",
                    Outcome::Skipped,
                    "SIM not ready",
                    0,
                ),
            ],
        };
        let text = render(&run);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "  ok    modem responds (AT)         31 ms  SIMCOM_Ltd SIMCOM_SIM800"
        );
        assert_eq!(
            lines[1],
            "  FAIL  SIM ready                    0 ms  not inserted"
        );
        assert_eq!(
            lines[2],
            "  skip  registered (operator)              SIM not ready"
        );
        assert_eq!(lines[3], "self-test FAILED at \"SIM ready\" (run 3, 0.2 s)");
    }
}
