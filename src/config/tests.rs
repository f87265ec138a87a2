use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Loaded, Vec<String>> {
    Config::parse(text, "t.toml", Path::new("/etc/pagerbox")).map_err(|e| match e {
        ConfigError::Invalid(d) => d.iter().map(|d| d.to_string()).collect(),
        other => vec![other.to_string()],
    })
}

const MINIMAL: &str = r#"
[[users]]
id = "alice"
phone = "+4915112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "5m"

[[routes]]
id = "default"
policy = "p"
"#;

#[test]
fn empty_file_gives_loopback_defaults() {
    let c = parse("").unwrap().config;
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.udp.listen.to_string(), "127.0.0.1:5140");
    assert_eq!(c.http.max_body_bytes, 256 * 1024);
    assert_eq!(c.modem.device, ModemDevice::Simulator);
    assert!(c.http.token_file.is_none());
}

#[test]
fn minimal_config_loads_with_default_rules() {
    let c = parse(MINIMAL).unwrap().config;
    let alice = c.user("alice").unwrap();
    assert_eq!(alice.phone.as_ref().unwrap().as_str(), "+4915112345678");
    // No email: the default email rule is left out, SMS and voice kept.
    assert!(alice.rules.iter().all(|r| r.channel != Channel::Email));
    assert!(alice.rules.iter().any(|r| r.channel == Channel::Sms));
    assert_eq!(c.policies[0].steps[0].wait, Duration::from_secs(300));
}

#[test]
fn syntax_error_points_at_line_and_column() {
    let errs = parse("[daemon]\ntime_zone = \"UTC\"\nstate_dir = \n").unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("t.toml:3:"), "{errs:?}");
}

#[test]
fn every_problem_is_reported_with_its_place() {
    let text = r#"[daemon]
time_zone = "Europe/Berln"
country_code = "49"
colour = "blue"

[[users]]
id = "alice"
phone = "015112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alcie"]
schedules = ["nope"]

[[routes]]
id = "r"
policy = "q"
"#;
    let errs = parse(text).unwrap_err();
    let want = [
        ("t.toml:2:13:", "unknown time zone \"Europe/Berln\""),
        ("t.toml:4:1:", "unknown key `daemon.colour`"),
        ("t.toml:8:9:", "did you mean \"+4915112345678\""),
        ("t.toml:13:10:", "unknown user \"alcie\""),
        ("t.toml:14:14:", "unknown schedule \"nope\""),
        ("t.toml:18:10:", "unknown policy \"q\""),
    ];
    for (place, what) in want {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(place) && e.contains(what)),
            "missing {place} {what} in {errs:#?}"
        );
    }
}

#[test]
fn wrong_type_is_reported() {
    let errs = parse("[http]\nmax_body_bytes = \"big\"\n").unwrap_err();
    assert!(errs[0].starts_with("t.toml:2:18:"), "{errs:?}");
}

#[test]
fn unknown_keys_in_arrays_of_tables_are_found() {
    let text = format!(
        "{MINIMAL}\n[[users]]\nid = \"bob\"\nemail = \"bob@example.org\"\nphnoe = \"+1\"\n"
    );
    let line = text.lines().position(|l| l.starts_with("phnoe")).unwrap() + 1;
    let errs = parse(&text).unwrap_err();
    let want = format!("t.toml:{line}:1: unknown key `users.1.phnoe`");
    assert!(errs.contains(&want), "{errs:#?}");
}

#[test]
fn bad_durations_and_addresses() {
    let errs =
        parse("[http]\nlisten = \"localhost\"\n[paging]\ngroup_window = \"soon\"\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:2:10:") && e.contains("HOST:PORT")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:4:16:") && e.contains("not a duration")),
        "{errs:?}"
    );
}

#[test]
fn channel_start_wait_defaults_to_a_minute_and_is_bounded() {
    let c = parse("").unwrap().config;
    assert_eq!(c.paging.channel_start_wait, Duration::from_secs(60));
    let c = parse("[paging]\nchannel_start_wait = \"5s\"\n")
        .unwrap()
        .config;
    assert_eq!(c.paging.channel_start_wait, Duration::from_secs(5));
    let errs = parse("[paging]\nchannel_start_wait = \"2h\"\n").unwrap_err();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.toml:2:22:")
                && e.contains("paging.channel_start_wait: at most")),
        "{errs:?}"
    );
}

#[test]
fn route_after_default_can_never_match() {
    let text = format!(
        "{MINIMAL}\n[[routes]]\nid = \"late\"\npolicy = \"p\"\nmatch = {{ service = \"db\" }}\n"
    );
    let errs = parse(&text).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("can never match")),
        "{errs:?}"
    );
}

#[test]
fn example_config_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pagerbox.example.toml");
    let loaded = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config.users.len(), 3);
    assert_eq!(loaded.config.schedules[0].layers.len(), 2);
}

#[test]
fn phone_numbers_normalise() {
    let n = |s| PhoneNumber::normalize(s, "49").map(|p| p.to_string());
    assert_eq!(n("+49 151 1234-5678").as_deref(), Some("+4915112345678"));
    assert_eq!(n("0049 151 12345678").as_deref(), Some("+4915112345678"));
    assert_eq!(n("0151 12345678").as_deref(), Some("+4915112345678"));
    assert_eq!(n("4915112345678").as_deref(), Some("+4915112345678"));
    assert_eq!(n("Vodafone"), None);
    assert_eq!(n("2222"), None);
    assert_eq!(mask_number("+4915112345678"), "+**********678");
    let r = |s, cc| {
        PhoneNumber::readings(s, cc)
            .into_iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    // A bare number of unknown type: international, or national where no trunk zero is dialled.
    assert_eq!(r("2125550123", "1"), ["+2125550123", "+12125550123"]);
    assert_eq!(r("3471234567", "39"), ["+3471234567", "+393471234567"]);
    // Where a trunk zero is dialled, bare digits are international: a US caller's
    // 15100000001 is not a German 0151 0000 0001.
    assert_eq!(r("15100000001", "49"), ["+15100000001"]);
    // In North America only ten digits are national.
    assert_eq!(r("15100000001", "1"), ["+15100000001"]);
    // Numbers that say what they are have one reading.
    assert_eq!(r("+12125550123", "1"), ["+12125550123"]);
    assert_eq!(r("015112345678", "49"), ["+4915112345678"]);
    assert_eq!(r("Vodafone", "49"), Vec::<String>::new());
}

#[test]
fn secrets_do_not_show_in_debug() {
    let s = Secret::new("hunter2");
    assert_eq!(format!("{s:?}"), "Secret(***)");
}

#[test]
fn default_rules_start_at_once_on_the_channels_a_person_has() {
    let text = "[[users]]\nid = \"m\"\nemail = \"m@example.org\"\n";
    let c = parse(text).unwrap().config;
    let rules = &c.user("m").unwrap().rules;
    assert!(rules.iter().all(|r| r.channel == Channel::Email));
    assert!(rules.iter().all(|r| r.after == Duration::ZERO), "{rules:?}");
}

#[test]
fn business_hours_default_and_errors_point_at_the_window() {
    let c = parse("").unwrap().config;
    assert_eq!(c.daemon.business_hours.len(), 1);
    assert_eq!(
        c.daemon.business_hours[0].to_string(),
        "Mon,Tue,Wed,Thu,Fri 09:00-17:00"
    );
    let c = parse("[daemon]\nbusiness_hours = [\"Mon-Thu 08:00-18:00\", \"Fri 08:00-14:00\"]\n")
        .unwrap()
        .config;
    assert_eq!(c.daemon.business_hours.len(), 2);
    let errs = parse("[daemon]\nbusiness_hours = [\"Mon-Fri 09:00-17:00\", \"weekdays 9-5\"]\n")
        .unwrap_err();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("t.toml:2:42: daemon.business_hours: bad restriction \"weekdays 9-5\""),
        "{errs:?}"
    );
}

#[test]
fn maintenance_windows_in_a_zone_are_dst_safe() {
    let text = format!(
        r#"{MINIMAL}
[[silences]]
id = "spring"
time_zone = "Europe/Berlin"
# 02:30 does not exist on 2026-03-29 (clocks jump 02:00 -> 03:00): the first instant after the gap.
starts = "2026-03-29T01:30"
ends = "2026-03-29T02:30"
service = "db"

[[silences]]
id = "autumn"
time_zone = "Europe/Berlin"
# 02:30 happens twice on 2026-10-25: the earlier one (CEST).
starts = "2026-10-25T02:30"
ends = "2026-10-25T03:30"
matchers = ["env=prod", "instance=~db.*"]
comment = "failover test"

[[silences]]
id = "offset"
starts = "2026-11-29T02:00:00+01:00"
ends = "2026-11-29T04:00:00Z"
service = "web"
"#
    );
    let c = parse(&text).unwrap().config;
    let utc = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let got: Vec<_> = c
        .silences
        .iter()
        .map(|s| (s.id.key(), s.starts_at, s.ends_at))
        .collect();
    assert_eq!(
        got,
        [
            (
                "config:spring".to_string(),
                utc("2026-03-29T00:30:00Z"),
                utc("2026-03-29T01:00:00Z")
            ),
            (
                "config:autumn".to_string(),
                utc("2026-10-25T00:30:00Z"),
                utc("2026-10-25T02:30:00Z")
            ),
            (
                "config:offset".to_string(),
                utc("2026-11-29T01:00:00Z"),
                utc("2026-11-29T04:00:00Z")
            ),
        ]
    );
    assert_eq!(c.silences[1].matchers.len(), 2);
    assert_eq!(c.silences[1].comment, "failover test");
}

#[test]
fn bad_maintenance_windows_point_at_the_line() {
    let text = format!(
        r#"{MINIMAL}
[[silences]]
id = "a"
starts = "tomorrow"
ends = "2026-11-29T04:00"
service = "db"

[[silences]]
id = "b"
starts = "2026-11-29T04:00"
ends = "2026-11-29T03:00"
matchers = ["env", "x=~(open"]

[[silences]]
id = "c"
starts = "2026-11-29T03:00"
ends = "2026-11-29T04:00"
"#
    );
    let errs = parse(&text).unwrap_err();
    let want = [
        "t.toml:18:10: silences.starts: \"tomorrow\" is not a time",
        "t.toml:26:13: silences.matchers: matcher \"env\": expected NAME=VALUE",
        "t.toml:26:20: silences.matchers: matcher \"x=~(open\": bad regular expression: unclosed group",
        "t.toml:29:6: silences: a silence needs a service or a matcher that an empty value",
    ];
    assert_eq!(errs.len(), want.len(), "{errs:#?}");
    for w in want {
        assert!(errs.iter().any(|e| e.starts_with(w)), "{w}\n{errs:#?}");
    }
    // b's matchers were bad, so its empty window is not reached; check it on its own.
    let text = format!(
        "{MINIMAL}\n[[silences]]\nid = \"b\"\nstarts = \"2026-11-29T04:00\"\nends = \"2026-11-29T03:00\"\nservice = \"db\"\n"
    );
    let errs = parse(&text).unwrap_err();
    assert!(
        errs[0].contains("silences.ends: the silence must end after it starts"),
        "{errs:?}"
    );
}

#[test]
fn opsgenie_and_victorops_keys_are_read_from_files_and_reported_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("og-db.key"), "og-db-secret\n").unwrap();
    std::fs::write(dir.path().join("vo.key"), "vo-secret\n").unwrap();
    let text = r#"
[[opsgenie.keys]]
key_file = "og-db.key"
routing_key = "database"

[victorops]
api_key_file = "vo.key"
"#;
    let c = Config::parse(text, "t.toml", dir.path()).unwrap().config;
    assert_eq!(c.opsgenie.keys.len(), 1);
    assert_eq!(c.opsgenie.keys[0].key.expose(), "og-db-secret");
    assert_eq!(c.opsgenie.keys[0].routing_key.as_deref(), Some("database"));
    assert_eq!(c.victorops.api_key.as_ref().unwrap().expose(), "vo-secret");

    let bad = r#"
[[opsgenie.keys]]
key_file = "og-db.key"

[[opsgenie.keys]]
key_file = "og-db.key"

[[opsgenie.keys]]
key_file = "missing.key"

[victorops]
api_key_file = "nope.key"
"#;
    let errs = match Config::parse(bad, "t.toml", dir.path()) {
        Err(ConfigError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        other => panic!("expected errors, got {:?}", other.map(|_| ())),
    };
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].starts_with("t.toml:6:12: opsgenie.keys.key_file: this key is already listed"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("t.toml:9:12: opsgenie.keys.key_file: cannot read "),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("t.toml:12:16: victorops.api_key_file: cannot read "),
        "{errs:?}"
    );
    let unknown = parse("[opsgenie]\nkey = \"inline\"\n").unwrap_err();
    assert!(
        unknown[0].contains("unknown key `opsgenie.key`"),
        "{unknown:?}"
    );
}

#[test]
fn a_weekly_maintenance_window_repeats_in_local_time() {
    let text = format!(
        "{MINIMAL}\n[[silences]]\nid = \"weekly\"\ntime_zone = \"Europe/Berlin\"\nstarts = \"2026-03-22T02:30\"\nends = \"2026-03-22T03:30\"\nevery = \"7d\"\nservice = \"db\"\n"
    );
    let c = parse(&text).unwrap().config;
    let r = c.silences[0].repeat.as_ref().unwrap();
    assert_eq!(r.every_days, 7);
    let at = chrono::DateTime::parse_from_rfc3339("2026-07-05T00:45:00Z")
        .unwrap()
        .to_utc();
    assert!(c.silences[0].in_force(at).is_some());
    for (every, want) in [
        (
            "36h",
            "silences.every: \"36h\" is not a whole number of days",
        ),
        ("1h", "silences.every: \"1h\" is not a whole number of days"),
    ] {
        let errs = parse(&text.replace("\"7d\"", &format!("{every:?}"))).unwrap_err();
        assert!(errs[0].contains(want), "{errs:?}");
    }
    let long = text.replace("2026-03-22T03:30", "2026-03-29T03:30");
    let errs = parse(&long).unwrap_err();
    assert!(
        errs[0].contains("the window must be shorter than its repeat period"),
        "{errs:?}"
    );
}

#[test]
fn selftest_section_is_optional_and_validated() {
    let c = parse(MINIMAL).unwrap().config;
    assert!(!c.selftest.enabled);
    let text = format!(
        "{MINIMAL}\n[selftest]\nschedule = \"weekly Mon 10:00 Europe/Berlin\"\ntarget = \"+4915112345678\"\n\
         expect_reply_from = \"+4915100000002\"\ncredit_ussd = \"*100#\"\ncredit_min = 5.0\ngrace = \"30s\"\n"
    );
    let c = parse(&text).unwrap().config;
    assert!(c.selftest.enabled);
    assert!(c.selftest.schedule.is_some());
    assert_eq!(c.selftest.credit_ussd.as_deref(), Some("*100#"));
    assert_eq!(c.selftest.credit_min, Some(5.0));
    assert_eq!(c.selftest.grace, Duration::from_secs(30));
}

#[test]
fn selftest_errors_point_at_the_value() {
    let text = format!(
        "{MINIMAL}\n[selftest]\nschedule = \"weekly Funday 10:00\"\ntarget = \"oncall:nope\"\n\
         credit_ussd = \"*100#; AT\"\ncredit_pattern = \"(\"\nexpect_reply_from = \"0151\"\n"
    );
    let errs = parse(&text).unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:17:12: selftest.schedule: unknown weekday \"Funday\""),
        "{all}"
    );
    assert!(
        all.contains("selftest.target: no schedule \"nope\""),
        "{all}"
    );
    assert!(
        all.contains("selftest.credit_ussd: \"*100#; AT\" is not a USSD code"),
        "{all}"
    );
    assert!(
        all.contains("selftest.credit_pattern: not a valid regex"),
        "{all}"
    );
    assert!(
        all.contains("selftest.expect_reply_from: \"0151\" is not an E.164 number"),
        "{all}"
    );
}

#[test]
fn outbound_destinations_load_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("slack-url");
    std::fs::write(&url, "https://hooks.slack.com/services/T0/B0/x\n").unwrap();
    let text = format!(
        "{MINIMAL}\n[[outbound]]\nid = \"s\"\nkind = \"slack\"\nurl_file = \"{}\"\n\n\
         [[outbound]]\nid = \"w\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret = \"k\"\n\
         routes = [\"default\"]\nevents = [\"resolve\"]\nmax_queued = 5\ntimeout = \"2s\"\n",
        url.display()
    );
    let c = parse(&text).unwrap().config;
    assert_eq!(c.outbound.len(), 2);
    let s = &c.outbound[0];
    assert_eq!(s.kind, crate::config::outbound::Kind::Slack);
    assert_eq!(s.url.expose(), "https://hooks.slack.com/services/T0/B0/x");
    assert_eq!(s.max_queued, crate::config::outbound::DEFAULT_MAX_QUEUED);
    assert_eq!(s.events.len(), 3);
    assert!(!format!("{s:?}").contains("hooks.slack.com"));
    let w = &c.outbound[1];
    assert_eq!(w.secret.as_ref().unwrap().expose(), "k");
    assert_eq!(w.events, vec![crate::config::outbound::Event::Resolve]);
    assert_eq!(w.routes, vec!["default".to_string()]);
    assert_eq!(
        (w.max_queued, w.timeout),
        (5, std::time::Duration::from_secs(2))
    );
}

#[test]
fn outbound_errors_point_at_the_line_and_never_echo_the_url() {
    let text = format!(
        "{MINIMAL}\n[[outbound]]\nid = \"w\"\nkind = \"webhook\"\nurl = \"ftp://secret-host/x\"\n\
         routes = [\"nope\"]\nevents = [\"page\"]\n\n[[outbound]]\nid = \"t\"\nkind = \"fax\"\nurl = \"https://x\"\n"
    );
    let errs = parse(&text).unwrap_err();
    let all = errs.join("\n");
    assert!(
        all.contains("t.toml:19:7: outbound.url: must start with https://"),
        "{all}"
    );
    assert!(
        all.contains("t.toml:20:11: outbound.routes: unknown route \"nope\""),
        "{all}"
    );
    assert!(
        all.contains("t.toml:21:11: outbound.events: \"page\" is not one of"),
        "{all}"
    );
    assert!(all.contains("needs secret or secret_file"), "{all}");
    assert!(
        all.contains("t.toml:25:8: outbound.kind: \"fax\" is not one of slack, teams, webhook"),
        "{all}"
    );
    assert!(!all.contains("secret-host"), "{all}");
}

#[test]
fn timings_that_would_hide_a_wedged_modem_or_hold_pages_for_days_are_brought_in_range() {
    let text = format!(
        "{MINIMAL}\n[modem]\ncommand_timeout = \"0s\"\nhealth_interval = \"30d\"\n\n[paging]\ngroup_window = \"2h\"\nrate_limit_window = \"10d\"\n\n[email]\ntimeout = \"0s\"\n"
    );
    // Warned of and brought to the nearest bound, not refused: a box whose config carried such
    // a value before still starts and pages.
    let loaded = parse(&text).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    for key in [
        "modem.command_timeout: 0s is out of range (500ms..=2m); 500ms is used",
        "modem.health_interval: 30d is out of range (100ms..=10m); 10m is used",
        "paging.group_window: 2h is out of range (0s..=10m); 10m is used",
        "paging.rate_limit_window: 10d is out of range (1s..=1h); 1h is used",
        "email.timeout: 0s is out of range (1s..=5m); 1s is used",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(key)),
            "{key}: {warnings:?}"
        );
    }
    let c = &loaded.config;
    assert_eq!(c.modem.command_timeout, Duration::from_millis(500));
    assert_eq!(c.modem.health_interval, Duration::from_secs(600));
    assert_eq!(c.paging.group_window, Duration::from_secs(600));
    assert_eq!(c.paging.rate_limit_window, Duration::from_secs(3600));
    assert_eq!(c.email.timeout, Duration::from_secs(1));
    // The defaults and the example's values are inside.
    let ok = format!(
        "{MINIMAL}\n[modem]\ncommand_timeout = \"10s\"\nhealth_interval = \"30s\"\n\n[paging]\ngroup_window = \"0s\"\nrate_limit_window = \"10m\"\n"
    );
    parse(&ok).unwrap();
}

#[test]
fn durations_past_a_year_are_refused_at_their_place() {
    let text = format!(
        "{MINIMAL}\n[[heartbeats]]\nid = \"backup\"\ninterval = \"300000y\"\nroute = \"default\"\n\n[paging]\ngroup_window = \"9999999999999999999s\"\n"
    );
    let errs = parse(&text).unwrap_err();
    let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            "t.toml:{}:12: heartbeats.interval: \"300000y\" is too long",
            line("interval")
        ))),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            "t.toml:{}:16: paging.group_window:",
            line("group_window")
        ))),
        "{errs:?}"
    );
    // A year is still fine: a yearly job's heartbeat.
    let ok = format!(
        "{MINIMAL}\n[[heartbeats]]\nid = \"backup\"\ninterval = \"366d\"\nroute = \"default\"\n"
    );
    assert!(parse(&ok).is_ok(), "{:?}", parse(&ok).err());
}

#[test]
fn repeat_period_of_a_silence_is_at_most_a_year() {
    let text = format!(
        "{MINIMAL}\n[[silences]]\nid = \"s\"\nstarts = \"2026-01-01T02:00\"\nends = \"2026-01-01T03:00\"\nservice = \"db\"\nevery = \"300000y\"\ncomment = \"x\"\n"
    );
    let errs = parse(&text).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("silences.every")),
        "{errs:?}"
    );
}

#[test]
fn a_missing_email_secret_impairs_but_does_not_stop_loading() {
    let text = format!(
        "{MINIMAL}\n[email]\nenabled = true\nhost = \"smtp.example.org\"\nusername = \"u\"\npassword_file = \"/nonexistent/pw\"\nca_file = \"/nonexistent/ca.pem\"\n"
    );
    let loaded = parse(&text).expect("the daemon can start with it");
    let impaired: Vec<String> = loaded.impaired.iter().map(|d| d.to_string()).collect();
    let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    assert!(
        impaired.iter().any(|e| e.starts_with(&format!(
            "t.toml:{}:17: email.password_file: cannot read /nonexistent/pw",
            line("password_file")
        ))),
        "{impaired:?}"
    );
    assert!(
        impaired
            .iter()
            .any(|e| e.starts_with(&format!("t.toml:{}:11: email.ca_file:", line("ca_file")))),
        "{impaired:?}"
    );
    // `check` and a reload are strict.
    assert!(matches!(loaded.strict(), Err(ConfigError::Invalid(d)) if d.len() == 2));
}

#[test]
fn a_config_that_pages_nobody_loads_but_is_not_strict() {
    for text in ["", "[[users]]\nid = \"a\"\nphone = \"+4915100000001\"\n"] {
        let loaded = parse(text).unwrap();
        assert_eq!(loaded.impaired.len(), 1, "{:?}", loaded.impaired);
        assert!(loaded.impaired[0].message.contains("pages nobody"));
        assert!(loaded.strict().is_err());
    }
    let loaded = parse(MINIMAL).unwrap();
    assert!(loaded.impaired.is_empty(), "{:?}", loaded.impaired);
    assert!(loaded.strict().is_ok());
}

#[test]
fn http_time_limits_and_connection_cap_are_checked_with_their_position() {
    let c = parse(MINIMAL).unwrap().config;
    assert_eq!(c.http.header_timeout, Duration::from_secs(10));
    assert_eq!(c.http.body_timeout, Duration::from_secs(30));
    assert_eq!(c.http.max_connections, 1024);
    let text = format!(
        "{MINIMAL}\n[http]\nheader_timeout = \"0s\"\nbody_timeout = \"2h\"\nmax_connections = 3\n"
    );
    let errs = parse(&text).unwrap_err();
    let line = |key: &str| text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
    for key in ["header_timeout", "body_timeout", "max_connections"] {
        let want = format!("t.toml:{}:", line(key));
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&want) && e.contains(&format!("http.{key}"))),
            "{key}: {errs:#?}"
        );
    }
    let text = format!("{MINIMAL}\n[udp]\nunauthenticated = \"sometimes\"\n");
    let errs = parse(&text).unwrap_err();
    assert!(
        errs.iter().any(|e| e.contains("udp.unauthenticated")),
        "{errs:#?}"
    );
}

#[test]
fn standby_routes_merge_their_settings_over_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pd.token"), "pd-rest-token\n").unwrap();
    std::fs::write(dir.path().join("pd.routing"), "pd-routing\n").unwrap();
    std::fs::write(dir.path().join("og.key"), "og-key\n").unwrap();
    let text = format!(
        r#"{MINIMAL}
mode = "standby"

[[routes]]
id = "db"
policy = "p"
match = {{ service = "db" }}
standby = {{ upstream = "opsgenie", key_file = "og.key", grace = "2m", max_failures = 0 }}

[[routes]]
id = "web"
policy = "p"
match = {{ service = "web" }}

[standby]
upstream = "pagerduty"
key_file = "pd.token"
routing_key_file = "pd.routing"
poll_interval = "10s"
timeout = "5m"
"#
    );
    // The default route comes last in a real file; here `mode` belongs to it.
    let text = text.replacen(
        "[[routes]]\nid = \"default\"\npolicy = \"p\"\n\nmode = \"standby\"\n",
        "",
        1,
    ) + "\n[[routes]]\nid = \"default\"\npolicy = \"p\"\nmode = \"standby\"\n";
    let loaded = Config::parse(&text, "t.toml", dir.path()).unwrap_or_else(|e| panic!("{e}"));
    // A check may take at most a minute: a round waits for its checks, and the standby task
    // must show it is alive within three.
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("standby.timeout: 5m is out of range") && w.contains("1m is used")),
        "{warnings:?}"
    );
    let c = loaded.config;
    let sb = &c.standby;
    assert_eq!(
        sb.for_route(Some("default")).unwrap().timeout,
        Duration::from_secs(60)
    );
    assert!(sb.for_route(Some("web")).is_none());
    let d = sb.for_route(Some("default")).unwrap();
    assert_eq!(d.upstream, crate::config::standby::Upstream::PagerDuty);
    assert_eq!(d.base_url, crate::config::standby::PAGERDUTY_API);
    assert_eq!(d.key.expose(), "pd-rest-token");
    assert_eq!(d.routing_key.as_ref().unwrap().expose(), "pd-routing");
    assert_eq!(d.grace, crate::config::standby::DEFAULT_GRACE);
    assert_eq!(d.poll_interval, Duration::from_secs(10));
    let db = sb.for_route(Some("db")).unwrap();
    assert_eq!(db.upstream, crate::config::standby::Upstream::Opsgenie);
    assert_eq!(db.base_url, crate::config::standby::OPSGENIE_API);
    assert_eq!(db.key.expose(), "og-key");
    assert_eq!(db.grace, Duration::from_secs(120));
    assert_eq!(db.max_failures, 0);
    assert_eq!(sb.shortest_grace(), Some(Duration::from_secs(120)));
}

#[test]
fn standby_mistakes_are_reported_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = r#"
[[users]]
id = "alice"
phone = "+4915112345678"

[[policies]]
id = "p"
[[policies.steps]]
users = ["alice"]
wait = "5m"

[[routes]]
id = "a"
policy = "p"
match = { service = "a" }
mode = "backup"

[[routes]]
id = "b"
policy = "p"
match = { service = "b" }
standby = { upstream = "victorops", grace = "0s", max_failures = -1 }

[[routes]]
id = "default"
policy = "p"
mode = "standby"

[standby]
key_file = "missing.token"
base_url = "ftp://example.org"
"#;
    let errs = match Config::parse(bad, "t.toml", dir.path()) {
        Err(ConfigError::Invalid(d)) => d.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        other => panic!("expected errors, got {:?}", other.map(|_| ())),
    };
    let has = |prefix: &str| errs.iter().filter(|e| e.starts_with(prefix)).count() == 1;
    assert!(
        has("t.toml:16:8: routes.mode: \"backup\" is not"),
        "{errs:?}"
    );
    assert!(
        has("t.toml:22:24: standby.upstream: \"victorops\" is not"),
        "{errs:?}"
    );
    assert!(
        has("t.toml:22:45: standby.grace: must be longer than 0"),
        "{errs:?}"
    );
    assert!(
        has("t.toml:22:66: standby.max_failures: must be 0"),
        "{errs:?}"
    );
    assert!(
        has("t.toml:30:12: standby.key_file: cannot read "),
        "{errs:?}"
    );
    assert!(
        has("t.toml:31:12: standby.base_url: must start with https://"),
        "{errs:?}"
    );
    // The default route has no upstream at all: said once at the route's mode.
    assert!(
        has("t.toml:27:8: standby.upstream: a standby route needs an upstream"),
        "{errs:?}"
    );
    assert!(
        parse("[standby]\nupstream = \"pagerduty\"\nkeyfile = \"x\"\n")
            .unwrap_err()
            .iter()
            .any(|e| e.contains("unknown key `standby.keyfile`")),
    );
}

/// A layer start or a config override past year 9999 is refused where it is written: `%Y` alone
/// reads "+10000", and such a time has no four-digit form to be written back out in.
#[test]
fn schedule_times_past_year_9999_are_refused_at_their_line() {
    let text = format!(
        "{MINIMAL}\n[[schedules]]\nid = \"s\"\n[[schedules.layers]]\nusers = [\"alice\"]\n\
         shift = \"1d\"\nstart = \"+10000-01-05T09:00\"\n"
    );
    let errors = parse(&text).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("schedules.layers.start") && e.contains("0-9999")),
        "{errors:?}"
    );
    let ok = text.replace("+10000-01-05T09:00", "9999-01-05T09:00");
    assert!(parse(&ok).is_ok(), "{:?}", parse(&ok).err());
}

/// `5M` is five months to humantime: a delay before a page written in months is refused, with
/// what to write instead. Those delays are brought within a day with a warning (a box whose
/// config carried a longer one still starts and pages), so a typo cannot hold a page for weeks
/// while nothing shows as overdue. Other durations (a monthly heartbeat) may count months.
#[test]
fn page_delays_refuse_months_and_are_brought_within_a_day() {
    let text = MINIMAL.replace("policy = \"p\"", "policy = \"p\"\npre_page_delay = \"5M\"");
    let errs = parse(&text).unwrap_err().join("\n");
    assert!(
        errs.contains("routes.pre_page_delay: \"5M\": M means months"),
        "{errs}"
    );
    let text = MINIMAL.replace("wait = \"5m\"", "wait = \"2 months\"");
    let errs = parse(&text).unwrap_err().join("\n");
    assert!(errs.contains("policies.steps.wait"), "{errs}");
    let rule = MINIMAL
        .replace(
            "phone = \"+4915112345678\"",
            "phone = \"+4915112345678\"\n[[users.rules]]\nchannel = \"sms\"\nafter = \"3d\"",
        )
        .replace("wait = \"5m\"", "wait = \"2d\"");
    let loaded = parse(&rule).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.to_string()).collect();
    for key in [
        "users.rules.after: 3d is out of range",
        "policies.steps.wait: 2d is out of range",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(key)),
            "{key}: {warnings:?}"
        );
    }
    assert_eq!(
        loaded.config.policies[0].steps[0].wait,
        Duration::from_secs(86_400)
    );
    let monthly = format!(
        "{MINIMAL}\n[[heartbeats]]\nid = \"backup\"\ninterval = \"1M\"\nroute = \"default\"\n"
    );
    parse(&monthly).unwrap();
}

/// A route that allows no channel pages nobody: refused by check and by a reload.
#[test]
fn a_route_with_no_channel_is_refused() {
    let text = MINIMAL.replace("policy = \"p\"", "policy = \"p\"\nchannels = []");
    let errs = parse(&text).unwrap().strict().unwrap_err().to_string();
    assert!(
        errs.contains("routes.channels: route \"default\" allows no channel"),
        "{errs}"
    );
    parse(&MINIMAL.replace("policy = \"p\"", "policy = \"p\"\nchannels = [\"sms\"]")).unwrap();
}

/// Two uses of one pin (a default included) are refused by `check` and a reload; a box that
/// starts with them runs without its panel. Pins of no panel are not checked.
#[test]
fn gpio_pins_must_differ() {
    let text = format!("{MINIMAL}\n[gpio]\nbackend = \"rppal\"\nled_pin = 17\n");
    let errs = parse(&text).unwrap().strict().unwrap_err().to_string();
    assert!(
        errs.contains("gpio.led_pin: pin 17 is already gpio.button_pin"),
        "{errs}"
    );
    let text = format!(
        "{MINIMAL}\n[gpio]\nbackend = \"rppal\"\nbutton_pin = 5\nled_pin = 6\nbuzzer_pin = 5\n"
    );
    let errs = parse(&text).unwrap().strict().unwrap_err().to_string();
    assert!(
        errs.contains("gpio.buzzer_pin: pin 5 is already gpio.button_pin"),
        "{errs}"
    );
    let fine = "[gpio]\nbackend = \"rppal\"\nbutton_pin = 5\nled_pin = 6\nbuzzer_pin = 7\n";
    parse(&format!("{MINIMAL}\n{fine}"))
        .unwrap()
        .strict()
        .unwrap();
    let unused = format!("{MINIMAL}\n[gpio]\nbackend = \"none\"\nled_pin = 17\n");
    parse(&unused).unwrap().strict().unwrap();
}
