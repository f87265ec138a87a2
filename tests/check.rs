//! `pagerbox check`: exit codes and FILE:LINE:COLUMN output.

mod util;

use std::process::Command;

#[test]
fn example_config_checks_clean() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pagerbox.example.toml");
    let out = Command::new(util::BIN)
        .args(["check", "--config", path])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
}

#[test]
fn broken_config_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[daemon]\ntime_zone = \"Mars/Olympus\"\n\n[[users]]\nid = \"a\"\nphone = \"12345\"\nemial = \"a@b\"\n",
    )
    .unwrap();
    let out = Command::new(util::BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let file = path.display().to_string();
    assert!(
        text.contains(&format!("{file}:2:13: daemon.time_zone: unknown time zone")),
        "{text}"
    );
    assert!(text.contains(&format!("{file}:6:9: users.phone")), "{text}");
    assert!(
        text.contains(&format!("{file}:7:1: unknown key `users.0.emial`")),
        "{text}"
    );
}

/// A token file `run` could not read (missing, empty) is reported by `check` at its line rather
/// than passing `check` silently and stopping `run`. A warning: the CLI reads this config too,
/// as users who may not read the daemon's token file.
#[test]
fn an_unreadable_token_file_is_reported_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(dir.path().join("empty"), "  \n").unwrap();
    for (file, why) in [("missing", "No such file"), ("empty", "is empty")] {
        std::fs::write(&path, format!("[http]\ntoken_file = \"{file}\"\n")).unwrap();
        let out = Command::new(util::BIN)
            .arg("check")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let at = format!(
            "{}:2:14: warning: http.token_file: cannot read",
            path.display()
        );
        assert!(text.contains(&at) && text.contains(why), "{text}");
    }
}

#[test]
fn syntax_error_and_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[daemon\n").unwrap();
    let out = Command::new(util::BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{}:1:", path.display())));
    let out = Command::new(util::BIN)
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent.toml"));
}

#[test]
fn gaps_in_the_next_28_days_are_warned_about_by_window() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gap.toml");
    std::fs::write(
        &path,
        r#"[[users]]
id = "a"
phone = "+4915100000001"
[[schedules]]
id = "day"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = ["a"]
shift = "1d"
start = "2026-01-05T09:00"
restrictions = ["Mon-Fri 09:00-18:00"]
[[policies]]
id = "p"
[[policies.steps]]
schedules = ["day"]
[[routes]]
id = "r"
policy = "p"
"#,
    )
    .unwrap();
    let out = Command::new(util::BIN)
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "gaps are warnings, not errors");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("warning: schedule \"day\": nobody on call from")
            && text.contains("18:00 CE"),
        "{text}"
    );
}

/// `pagerbox schedule ... | head -1`: the reader goes away after one line, and the command ends
/// as Unix tools do (by SIGPIPE, quietly), not with a panic and a backtrace.
#[test]
fn a_command_whose_reader_goes_away_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/pagerbox.example.toml");
    let mut child = Command::new(util::BIN)
        .args(["schedule", "--config", path, "primary", "--days", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("schedule primary"), "{first}");
    // The pipe's reading end is closed here.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(101), "{stderr}");
    assert!(
        out.status.success() || out.status.signal() == Some(13),
        "ended by {:?}: {stderr}",
        out.status
    );
}
