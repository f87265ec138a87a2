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
    assert_eq!(s.kind, crate::outbound::Kind::Slack);
    assert_eq!(s.url.expose(), "https://hooks.slack.com/services/T0/B0/x");
    assert_eq!(s.max_queued, crate::outbound::DEFAULT_MAX_QUEUED);
    assert_eq!(s.events.len(), 3);
    assert!(!format!("{s:?}").contains("hooks.slack.com"));
    let w = &c.outbound[1];
    assert_eq!(w.secret.as_ref().unwrap().expose(), "k");
    assert_eq!(w.events, vec![crate::outbound::Event::Resolve]);
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
