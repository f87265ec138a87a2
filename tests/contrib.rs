//! The contrib/ notification commands, run exactly as Nagios, Icinga 2 and Zabbix run them: the
//! command definitions are read from the contrib files (not copied here), their macros filled
//! in the way each tool fills them, and the result executed against a real daemon.

mod util;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use util::{Daemon, BIN};

fn contrib(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib")
        .join(rel)
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(contrib(rel)).unwrap()
}

/// PATH with the pagerbox under test first, as if installed.
fn path_with_pagerbox() -> String {
    let dir = Path::new(BIN).parent().unwrap();
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn check(out: Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The newest incident with this dedup key.
fn incident(d: &Daemon, key: &str) -> Option<Value> {
    let (code, v) = d.get("/v1/incidents?status=all");
    assert_eq!(code, 200, "{v}");
    v["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["dedup_key"] == key)
        .cloned()
}

fn incident_count(d: &Daemon) -> usize {
    d.get("/v1/incidents?status=all").1["incidents"]
        .as_array()
        .unwrap()
        .len()
}

// ---- Nagios ---------------------------------------------------------------------------------

/// The `command_line` of the `define command` block named `name`.
fn nagios_command(cfg: &str, name: &str) -> String {
    let mut in_block = false;
    for line in cfg.lines() {
        let l = line.trim();
        if l.starts_with("define command") {
            in_block = false;
        }
        if let Some(n) = l.strip_prefix("command_name") {
            in_block = n.trim() == name;
        }
        if in_block {
            if let Some(c) = l.strip_prefix("command_line") {
                return c.trim().to_string();
            }
        }
    }
    panic!("no command {name}")
}

/// Nagios' default illegal_macro_output_chars, stripped from the *OUTPUT$ macros.
const NAGIOS_ILLEGAL_OUTPUT: &str = "`~$&|'\"<>";

/// Expands `$MACRO$` as Nagios does (unknown macros are left as they are).
fn nagios_expand(line: &str, macros: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('$') {
            Some(end) if macros.contains_key(&after[..end]) => {
                let name = &after[..end];
                let value = macros[name];
                if name.ends_with("OUTPUT") {
                    out.extend(
                        value
                            .chars()
                            .filter(|c| !NAGIOS_ILLEGAL_OUTPUT.contains(*c)),
                    );
                } else {
                    out.push_str(value);
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Runs a command line as Nagios does for one with shell metacharacters: `/bin/sh -c`.
fn nagios_run(d: &Daemon, command: &str, macros: &[(&str, &str)]) -> String {
    let line = nagios_command(&read("nagios/pagerbox.cfg"), command);
    let cmd = nagios_expand(&line, &macros.iter().copied().collect());
    check(
        Command::new("/bin/sh")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", path_with_pagerbox())
            .env("PAGERBOX_CONFIG", &d.config)
            .env_remove("PAGERBOX_URL")
            .env_remove("PAGERBOX_TOKEN_FILE")
            .output()
            .unwrap(),
    )
}

#[test]
fn nagios_host_problem_pages_and_recovery_resolves() {
    let d = Daemon::start("");
    let problem = [
        ("NOTIFICATIONTYPE", "PROBLEM"),
        ("HOSTNAME", "web1"),
        ("HOSTSTATE", "DOWN"),
        (
            "HOSTOUTPUT",
            "CRITICAL - 10.0.0.1: rta nan, lost 100% \"$x\" <y>",
        ),
    ];
    nagios_run(&d, "notify-host-by-pagerbox", &problem);
    let i = incident(&d, "nagios:web1").expect("incident for the host");
    assert_eq!(i["status"], "triggered");
    assert_eq!(i["severity"], "critical");
    assert_eq!(i["service"], "web1");
    assert_eq!(i["source"], "web1");
    assert_eq!(
        i["summary"],
        "web1 is DOWN: CRITICAL - 10.0.0.1: rta nan, lost 100% x y"
    );
    assert_eq!(
        i["details"]["output"],
        "CRITICAL - 10.0.0.1: rta nan, lost 100% x y"
    );
    // A re-notification of the same problem is a repeat, not a new incident.
    nagios_run(&d, "notify-host-by-pagerbox", &problem);
    assert_eq!(incident(&d, "nagios:web1").unwrap()["alert_count"], 2);

    nagios_run(
        &d,
        "notify-host-by-pagerbox",
        &[
            ("NOTIFICATIONTYPE", "RECOVERY"),
            ("HOSTNAME", "web1"),
            ("HOSTSTATE", "UP"),
            ("HOSTOUTPUT", "OK - 10.0.0.1: rta 0.4ms, lost 0%"),
        ],
    );
    let i = incident(&d, "nagios:web1").unwrap();
    assert_eq!(i["status"], "resolved");
    assert_eq!(incident_count(&d), 1);
}

#[test]
fn nagios_service_warning_ack_and_recovery_and_flapping_sends_nothing() {
    let d = Daemon::start("");
    let svc = |kind: &'static str, state: &'static str, output: &'static str| {
        [
            ("NOTIFICATIONTYPE", kind),
            ("HOSTNAME", "db1"),
            ("SERVICEDESC", "Disk /var"),
            ("SERVICESTATE", state),
            ("SERVICEOUTPUT", output),
        ]
    };
    nagios_run(
        &d,
        "notify-service-by-pagerbox",
        &svc("PROBLEM", "WARNING", "DISK WARNING - free space: /var 9%"),
    );
    let i = incident(&d, "nagios:db1/Disk /var").expect("incident for the service");
    assert_eq!(i["severity"], "warning");
    assert_eq!(i["service"], "Disk /var");
    assert_eq!(
        i["summary"],
        "db1/Disk /var is WARNING: DISK WARNING - free space: /var 9%"
    );
    let out = nagios_run(
        &d,
        "notify-service-by-pagerbox",
        &svc("FLAPPINGSTART", "WARNING", "flapping"),
    );
    assert!(out.contains("nothing sent"), "{out}");
    assert_eq!(incident_count(&d), 1);
    nagios_run(
        &d,
        "notify-service-by-pagerbox",
        &svc("ACKNOWLEDGEMENT", "WARNING", "DISK WARNING"),
    );
    assert_eq!(
        incident(&d, "nagios:db1/Disk /var").unwrap()["status"],
        "acknowledged"
    );
    nagios_run(
        &d,
        "notify-service-by-pagerbox",
        &svc("RECOVERY", "OK", "DISK OK - free space: /var 40%"),
    );
    assert_eq!(
        incident(&d, "nagios:db1/Disk /var").unwrap()["status"],
        "resolved"
    );
}

// ---- Icinga 2 -------------------------------------------------------------------------------

/// A NotificationCommand as Icinga 2 would build it: argv and environment.
struct IcingaCommand {
    argv: Vec<String>,
    env: Vec<(String, String)>,
}

/// Reads `const NAME = "value"` lines.
fn icinga_consts(conf: &str) -> BTreeMap<String, String> {
    conf.lines()
        .filter_map(|l| {
            let rest = l.trim().strip_prefix("const ")?;
            let (name, value) = rest.split_once('=')?;
            Some((
                name.trim().to_string(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

/// A quoted string or a constant name.
fn icinga_value(token: &str, consts: &BTreeMap<String, String>) -> String {
    let t = token.trim().trim_end_matches(';');
    if let Some(s) = t.strip_prefix('"') {
        s.trim_end_matches('"').to_string()
    } else {
        consts
            .get(t)
            .unwrap_or_else(|| panic!("unknown constant {t}"))
            .clone()
    }
}

/// Expands Icinga 2 runtime macros `$a.b$`.
fn icinga_expand(s: &str, macros: &BTreeMap<&str, &str>) -> String {
    let mut out = s.to_string();
    for (k, v) in macros {
        out = out.replace(&format!("${k}$"), v);
    }
    assert!(!out.contains('$'), "unexpanded macro in {out:?}");
    out
}

/// Builds the command line of NotificationCommand `name` the way Icinga 2 does: `command`, then
/// each argument (key, then value; `skip_key` drops the key) sorted by `order` (default 0).
fn icinga_command(
    conf: &str,
    name: &str,
    consts: &BTreeMap<String, String>,
    macros: &BTreeMap<&str, &str>,
) -> IcingaCommand {
    let start = conf
        .find(&format!("object NotificationCommand \"{name}\""))
        .unwrap_or_else(|| panic!("no NotificationCommand {name}"));
    let body: Vec<&str> = conf[start..].lines().skip(1).collect();
    let mut command = Vec::new();
    let mut env = Vec::new();
    // (order, key, value, skip_key)
    let mut args: Vec<(i64, String, String, bool)> = Vec::new();
    let mut section = "";
    let mut current: Option<(String, String, bool, i64)> = None;
    for line in body {
        let l = line.trim();
        if l == "}" && section.is_empty() {
            break;
        }
        if let Some(rest) = l.strip_prefix("command = [") {
            command = rest
                .trim_end_matches(']')
                .split(',')
                .map(|t| icinga_value(t, consts))
                .collect();
            continue;
        }
        if l.starts_with("env = {") {
            section = "env";
            continue;
        }
        if l.starts_with("arguments = {") {
            section = "arguments";
            continue;
        }
        if l == "}" {
            if let Some((key, value, skip, order)) = current.take() {
                args.push((order, key, value, skip));
            } else {
                section = "";
            }
            continue;
        }
        let Some((k, v)) = l.split_once(" = ") else {
            continue;
        };
        let k = k.trim().trim_matches('"').to_string();
        match (section, &mut current) {
            ("env", _) => env.push((k, icinga_value(v, consts))),
            ("arguments", Some((_, value, skip, order))) => match k.as_str() {
                "value" => *value = icinga_expand(&icinga_value(v, consts), macros),
                "skip_key" => *skip = v.trim() == "true",
                "order" => *order = v.trim().parse().unwrap(),
                other => panic!("argument attribute {other} not understood by this test"),
            },
            ("arguments", None) if v.trim() == "{" => {
                current = Some((k, String::new(), false, 0));
            }
            ("arguments", None) => {
                args.push((0, k, icinga_expand(&icinga_value(v, consts), macros), false))
            }
            _ => {}
        }
    }
    args.sort_by_key(|a| a.0);
    let mut argv = command;
    for (_, key, value, skip) in args {
        if !skip {
            argv.push(key);
        }
        argv.push(value);
    }
    IcingaCommand { argv, env }
}

/// Runs a NotificationCommand as Icinga 2 does: argv executed directly, no shell.
fn icinga_run(d: &Daemon, name: &str, macros: &[(&str, &str)]) -> String {
    let conf = read("icinga2/pagerbox.conf");
    let mut consts = icinga_consts(&conf);
    // What the operator edits on install.
    consts.insert("PagerboxBin".into(), BIN.into());
    consts.insert(
        "PagerboxConfig".into(),
        d.config.to_string_lossy().into_owned(),
    );
    let c = icinga_command(&conf, name, &consts, &macros.iter().copied().collect());
    check(
        Command::new(&c.argv[0])
            .args(&c.argv[1..])
            .envs(c.env)
            .env_remove("PAGERBOX_URL")
            .env_remove("PAGERBOX_TOKEN_FILE")
            .output()
            .unwrap(),
    )
}

#[test]
fn icinga2_host_and_service_notifications_page_and_recover() {
    let d = Daemon::start("");
    icinga_run(
        &d,
        "pagerbox-host-notification",
        &[
            ("notification.type", "PROBLEM"),
            ("host.name", "router1"),
            ("host.state", "DOWN"),
            ("host.output", "PING CRITICAL - Packet loss = 100%"),
        ],
    );
    let h = incident(&d, "icinga:router1").expect("host incident");
    assert_eq!(
        (
            h["severity"].as_str(),
            h["service"].as_str(),
            h["summary"].as_str()
        ),
        (
            Some("critical"),
            Some("router1"),
            Some("router1 is DOWN: PING CRITICAL - Packet loss = 100%")
        )
    );

    let svc = |kind: &'static str, state: &'static str, output: &'static str| {
        [
            ("notification.type", kind),
            ("host.name", "router1"),
            ("service.name", "http"),
            ("service.state", state),
            ("service.output", output),
        ]
    };
    icinga_run(
        &d,
        "pagerbox-service-notification",
        &svc("PROBLEM", "UNKNOWN", "UNKNOWN - cannot resolve \"router1\""),
    );
    let s = incident(&d, "icinga:router1/http").expect("service incident");
    assert_eq!(s["severity"], "error");
    assert_eq!(s["service"], "http");
    // No shell: quotes in the output arrive as they are.
    assert_eq!(
        s["summary"],
        "router1/http is UNKNOWN: UNKNOWN - cannot resolve \"router1\""
    );
    icinga_run(
        &d,
        "pagerbox-service-notification",
        &svc("RECOVERY", "OK", "HTTP OK: 200"),
    );
    assert_eq!(
        incident(&d, "icinga:router1/http").unwrap()["status"],
        "resolved"
    );
    icinga_run(
        &d,
        "pagerbox-host-notification",
        &[
            ("notification.type", "RECOVERY"),
            ("host.name", "router1"),
            ("host.state", "UP"),
            ("host.output", "PING OK"),
        ],
    );
    assert_eq!(
        incident(&d, "icinga:router1").unwrap()["status"],
        "resolved"
    );
}

// ---- Zabbix ---------------------------------------------------------------------------------

/// The script parameters listed in the script's header (`#   $N = {MACRO}`), in order.
fn zabbix_parameters(script: &str) -> Vec<String> {
    let params: Vec<String> = script
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix('#')?.trim();
            let (n, m) = rest.split_once(" = ")?;
            let n = n.strip_prefix('$')?;
            n.parse::<u32>().ok()?;
            Some(m.trim().to_string())
        })
        .collect();
    assert!(!params.is_empty(), "no parameters in the script header");
    params
}

/// Runs the script as Zabbix' alerter does: the script with each parameter, macros expanded
/// (the daemon is reached through `{ALERT.SENDTO}`, the pagerbox URL).
fn zabbix_run(macros: &[(&str, &str)]) -> String {
    let script = contrib("zabbix/pagerbox.sh");
    let macros: BTreeMap<&str, &str> = macros.iter().copied().collect();
    let args: Vec<String> = zabbix_parameters(&read("zabbix/pagerbox.sh"))
        .iter()
        .map(|p| {
            let name = p.trim_start_matches('{').trim_end_matches('}');
            macros
                .get(name)
                .unwrap_or_else(|| panic!("test gives no value for {p}"))
                .to_string()
        })
        .collect();
    check(
        Command::new(&script)
            .args(&args)
            .env("PATH", path_with_pagerbox())
            .env_remove("PAGERBOX_CONFIG")
            .env_remove("PAGERBOX_URL")
            .env_remove("PAGERBOX_TOKEN_FILE")
            .output()
            .unwrap(),
    )
}

#[test]
fn zabbix_problem_pages_and_its_recovery_resolves() {
    let d = Daemon::start("");
    let url = format!("http://{}", d.http);
    let event = |value: &'static str| {
        [
            ("ALERT.SENDTO", url.as_str()),
            ("EVENT.VALUE", value),
            ("EVENT.NSEVERITY", "4"),
            ("EVENT.ID", "31337"),
            ("HOST.NAME", "db2"),
            ("EVENT.NAME", "MySQL is down"),
            ("ITEM.LASTVALUE", "0"),
        ]
    };
    zabbix_run(&event("1"));
    let i = incident(&d, "zabbix:31337").expect("zabbix incident");
    assert_eq!(i["severity"], "critical");
    assert_eq!(i["service"], "db2");
    assert_eq!(i["summary"], "db2: MySQL is down");
    assert_eq!(i["details"]["last_value"], "0");
    zabbix_run(&event("0"));
    assert_eq!(incident(&d, "zabbix:31337").unwrap()["status"], "resolved");

    // Severity mapping: average -> error, warning -> warning.
    for (nsev, want, id) in [("3", "error", "1"), ("2", "warning", "2")] {
        let mut e = event("1");
        e[2].1 = nsev;
        e[3].1 = id;
        zabbix_run(&e);
        assert_eq!(
            incident(&d, &format!("zabbix:{id}")).unwrap()["severity"],
            want
        );
    }
}
