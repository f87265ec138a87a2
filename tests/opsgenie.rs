//! End-to-end: the Opsgenie-compatible Alert API through the real binary, with bodies captured
//! from the Opsgenie Python SDK and Alertmanager's opsgenie notifier, and Opsgenie's documented
//! samples (tests/fixtures/opsgenie/PROVENANCE.md says where each came from).

mod util;

use serde_json::{json, Value};
use util::{fixture, fixture_request_path, secret_file, Daemon};

const DB_KEY: &str = "og-db-secret";
const OTHER_KEY: &str = "og-other-secret";

/// A daemon with two Opsgenie keys: one leads to the `database` route, one to the default.
fn daemon() -> (Daemon, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let db = secret_file(keys.path(), "og-db.key", DB_KEY);
    let other = secret_file(keys.path(), "og-other.key", OTHER_KEY);
    let extra = format!(
        r#"{}
[[opsgenie.keys]]
key_file = "{}"
routing_key = "database"

[[opsgenie.keys]]
key_file = "{}"
"#,
        util::routed_by_key(""),
        db.display(),
        other.display()
    );
    (Daemon::start(&extra), keys)
}

fn genie(key: &str) -> String {
    format!("GenieKey {key}")
}

fn post(d: &Daemon, path: &str, body: &[u8], key: &str) -> (u16, Value) {
    d.post_with_headers(path, body, &[("Authorization", &genie(key))])
}

/// Checks Opsgenie's 202 answer and returns the request id.
fn accepted(answer: (u16, Value)) -> String {
    let (code, v) = answer;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["result"], "Request will be processed", "{v}");
    assert!(v["took"].is_f64() || v["took"].is_u64(), "{v}");
    v["requestId"].as_str().unwrap().to_string()
}

fn status(d: &Daemon, request_id: &str, key: &str) -> Value {
    let (code, v) = d.get_with_headers(
        &format!("/v2/alerts/requests/{request_id}"),
        &[("Authorization", &genie(key))],
    );
    assert_eq!(code, 200, "{v}");
    assert!(v["requestId"].is_string() && v["took"].is_number(), "{v}");
    v["data"].clone()
}

fn incident(d: &Daemon, id: &str) -> Value {
    let (code, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(code, 200, "{v}");
    v
}

fn notes(v: &Value) -> Vec<(String, String)> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "note")
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("").to_string(),
                e["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn kinds(v: &Value) -> Vec<String> {
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sdk_bodies_create_dedup_note_acknowledge_and_close_by_alias() {
    let (d, _keys) = daemon();
    let rid = accepted(post(
        &d,
        "/v2/alerts",
        &fixture("opsgenie/sdk-python-create.json"),
        DB_KEY,
    ));
    let s = status(&d, &rid, DB_KEY);
    assert_eq!(
        (&s["success"], &s["isSuccess"], &s["action"], &s["status"]),
        (
            &json!(true),
            &json!(true),
            &json!("Create"),
            &json!("Created alert")
        )
    );
    assert_eq!(s["alias"], "disk-db1");
    let id = s["alertId"].as_str().unwrap().to_string();

    let v = incident(&d, &id);
    let i = &v["incident"];
    assert_eq!(i["severity"], "critical", "P1 is critical");
    assert_eq!(
        i["route"], "database",
        "the key's routing_key chose the route"
    );
    assert_eq!(i["dedup_key"], "disk-db1");
    assert_eq!(i["summary"], "Disk almost full on db1");
    assert_eq!(i["service"], "db1", "entity");
    assert_eq!(i["source"], "sdk-test");
    assert_eq!(i["details"]["description"], "/var on db1 is 97% full");
    assert_eq!(i["details"]["tags"], json!(["db", "disk"]));
    assert_eq!(i["details"]["details"]["used"], "97%");
    assert_eq!(i["details"]["actions"], json!(["Restart"]));
    assert_eq!(
        notes(&v),
        [("monitor".to_string(), "created from the SDK".to_string())]
    );

    // The same alias again: counted, not a second incident.
    let rid2 = accepted(post(
        &d,
        "/v2/alerts",
        &fixture("opsgenie/sdk-python-create.json"),
        DB_KEY,
    ));
    let s2 = status(&d, &rid2, DB_KEY);
    assert_eq!(
        (s2["alertId"].as_str(), &s2["status"]),
        (Some(id.as_str()), &json!("Alert deduplicated"))
    );
    assert_eq!(incident(&d, &id)["incident"]["alert_count"], 2);

    // Note, acknowledge and close by alias, at the paths the SDK used.
    for (name, status_text) in [
        ("note", "Added note"),
        ("acknowledge", "Acknowledged"),
        ("close", "Closed"),
    ] {
        let path = fixture_request_path(&format!("opsgenie/sdk-python-{name}.headers"));
        let rid = accepted(post(
            &d,
            &path,
            &fixture(&format!("opsgenie/sdk-python-{name}.json")),
            DB_KEY,
        ));
        let s = status(&d, &rid, DB_KEY);
        assert_eq!(
            (&s["success"], &s["status"]),
            (&json!(true), &json!(status_text)),
            "{name}: {s}"
        );
        assert_eq!(s["alertId"].as_str(), Some(id.as_str()));
    }
    let v = incident(&d, &id);
    let i = &v["incident"];
    assert_eq!(i["status"], "resolved");
    assert_eq!(
        (&i["acknowledged"]["by"], &i["acknowledged"]["via"]),
        (&json!("alice"), &json!("opsgenie"))
    );
    assert_eq!(
        (&i["resolved"]["by"], &i["resolved"]["via"]),
        (&json!("alice"), &json!("opsgenie"))
    );
    let n: Vec<String> = notes(&v).into_iter().map(|(_, m)| m).collect();
    // The repeated create carried its note too.
    assert_eq!(
        n,
        [
            "created from the SDK",
            "created from the SDK",
            "looking at it",
            "mine",
            "fixed"
        ]
    );
}

#[test]
fn acknowledge_and_close_by_id_and_tiny_id() {
    let (d, _keys) = daemon();
    let rid = accepted(post(
        &d,
        "/v2/alerts",
        &fixture("opsgenie/docs-create-alert.json"),
        OTHER_KEY,
    ));
    let id = status(&d, &rid, OTHER_KEY)["alertId"]
        .as_str()
        .unwrap()
        .to_string();
    let i = &incident(&d, &id)["incident"];
    assert_eq!(
        i["route"], "default",
        "a key without routing_key: default route"
    );
    assert_eq!(i["dedup_key"], "Life is too short for no alias");
    assert_eq!(i["details"]["details"]["key2"], "value2");

    // identifierType defaults to id.
    let rid = accepted(post(
        &d,
        &format!("/v2/alerts/{id}/acknowledge"),
        &fixture("opsgenie/docs-acknowledge-alert.json"),
        OTHER_KEY,
    ));
    assert_eq!(status(&d, &rid, OTHER_KEY)["status"], "Acknowledged");
    let i = &incident(&d, &id)["incident"];
    assert_eq!(
        (&i["status"], &i["acknowledged"]["by"]),
        (&json!("acknowledged"), &json!("Monitoring Script"))
    );
    let rid = accepted(post(
        &d,
        &format!("/v2/alerts/{id}/notes?identifierType=tiny"),
        &fixture("opsgenie/docs-add-note.json"),
        OTHER_KEY,
    ));
    assert_eq!(status(&d, &rid, OTHER_KEY)["status"], "Added note");
    let rid = accepted(post(
        &d,
        &format!("/v2/alerts/{id}/close?identifierType=tiny"),
        b"",
        OTHER_KEY,
    ));
    assert_eq!(status(&d, &rid, OTHER_KEY)["status"], "Closed");
    let v = incident(&d, &id);
    assert_eq!(v["incident"]["status"], "resolved");
    assert_eq!(v["incident"]["resolved"]["by"], "opsgenie");
    assert!(notes(&v)
        .iter()
        .any(|(who, m)| who == "Monitoring Script" && m == "Action executed via Alert API"));

    // Unknown alerts are still accepted (Opsgenie is asynchronous); the status says so.
    for path in [
        "/v2/alerts/9999/close",
        "/v2/alerts/8743a1b2-11da-480e-8493-744660987bef/acknowledge?identifierType=id",
        "/v2/alerts/no-such-alias/close?identifierType=alias",
    ] {
        let rid = accepted(post(&d, path, b"{}", OTHER_KEY));
        let s = status(&d, &rid, OTHER_KEY);
        assert_eq!(
            (&s["success"], &s["status"]),
            (&json!(false), &json!("Alert does not exist")),
            "{path}"
        );
    }
    let (code, v) = post(
        &d,
        "/v2/alerts/1/close?identifierType=name",
        b"{}",
        OTHER_KEY,
    );
    assert_eq!(code, 422, "{v}");
    assert!(v["errors"]["identifierType"].is_string(), "{v}");
    let (code, v) = d.get_with_headers(
        "/v2/alerts/requests/513085b8-caf3-4f91-aa23-be5fdefc3570",
        &[("Authorization", &genie(OTHER_KEY))],
    );
    assert_eq!(code, 404, "{v}");
    assert!(
        v["message"].is_string() && v["requestId"].is_string(),
        "{v}"
    );
}

#[test]
fn alertmanager_opsgenie_notifier_creates_and_closes() {
    let (d, _keys) = daemon();
    let create_path = fixture_request_path("opsgenie/alertmanager-opsgenie-create.headers");
    assert_eq!(create_path, "/v2/alerts");
    let rid = accepted(post(
        &d,
        &create_path,
        &fixture("opsgenie/alertmanager-opsgenie-create.json"),
        DB_KEY,
    ));
    let id = status(&d, &rid, DB_KEY)["alertId"]
        .as_str()
        .unwrap()
        .to_string();
    let i = &incident(&d, &id)["incident"];
    assert_eq!(i["severity"], "error", "P2 is error");
    assert_eq!(i["summary"], "[FIRING:1] DiskFull (db1:9100 node critical)");
    assert_eq!(i["details"]["details"]["instance"], "db1:9100");

    let close_path = fixture_request_path("opsgenie/alertmanager-opsgenie-close.headers");
    let rid = accepted(post(
        &d,
        &close_path,
        &fixture("opsgenie/alertmanager-opsgenie-close.json"),
        DB_KEY,
    ));
    assert_eq!(status(&d, &rid, DB_KEY)["status"], "Closed");
    assert_eq!(incident(&d, &id)["incident"]["status"], "resolved");
    // Alertmanager repeats a close it is unsure about: still 202, nothing changes.
    let rid = accepted(post(
        &d,
        &close_path,
        &fixture("opsgenie/alertmanager-opsgenie-close.json"),
        DB_KEY,
    ));
    assert_eq!(
        status(&d, &rid, DB_KEY)["status"],
        "Alert is already closed"
    );
}

#[test]
fn priorities_map_to_severities_and_p5_pages_nobody() {
    let (d, _keys) = daemon();
    for (p, severity) in [
        ("P1", "critical"),
        ("P2", "error"),
        ("P3", "warning"),
        ("P4", "info"),
        ("P5", "info"),
    ] {
        let body = json!({"message": format!("priority {p}"), "alias": format!("prio-{p}"), "priority": p});
        let rid = accepted(post(&d, "/v2/alerts", body.to_string().as_bytes(), DB_KEY));
        let id = status(&d, &rid, DB_KEY)["alertId"]
            .as_str()
            .unwrap()
            .to_string();
        let v = incident(&d, &id);
        assert_eq!(v["incident"]["severity"], severity, "{p}");
        assert_eq!(
            kinds(&v).contains(&"recorded".to_string()),
            p == "P5",
            "{p}: {:?}",
            kinds(&v)
        );
    }
}

#[test]
fn bad_keys_and_bad_bodies_get_opsgenie_errors() {
    let (d, _keys) = daemon();
    let body = fixture("opsgenie/sdk-python-create.json");
    for headers in [
        vec![],
        vec![("Authorization", "GenieKey not-a-key")],
        vec![("Authorization", "Bearer og-db-secret")],
    ] {
        let (code, v) = d.post_with_headers("/v2/alerts", &body, &headers);
        assert_eq!(code, 401, "{headers:?}: {v}");
        assert!(
            v["message"].is_string() && v["took"].is_number() && v["requestId"].is_string(),
            "{v}"
        );
    }
    let (code, v) = post(&d, "/v2/alerts", br#"{"message": "x""#, DB_KEY);
    assert_eq!(code, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("parse"), "{v}");
    let (code, v) = post(
        &d,
        "/v2/alerts",
        br#"{"message": "", "priority": "P0"}"#,
        DB_KEY,
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errors"]["message"], "Message can not be empty.");
    assert!(v["errors"]["priority"].is_string(), "{v}");
    let (code, v) = post(&d, "/v2/alerts/1/notes", br#"{"user": "a"}"#, DB_KEY);
    assert_eq!(code, 422, "{v}");
    assert!(v["errors"]["note"].is_string(), "{v}");
    let (_, list) = d.get("/v1/incidents?status=all");
    assert_eq!(list["incidents"], json!([]), "nothing refused was stored");
}

#[test]
fn write_token_is_a_genie_key_and_an_open_box_takes_any_key_as_routing_key() {
    let route = &util::routed_by_key(
        "[[routes]]\nid = \"team-a\"\npolicy = \"p\"\nmatch = { routing_key = \"team-a-key\" }\n",
    );
    let body = br#"{"message": "hello", "alias": "h"}"#;
    let d = Daemon::start_with(route, Some("tok"));
    accepted(post(&d, "/v2/alerts", body, "tok"));
    let (code, _) = post(&d, "/v2/alerts", body, "team-a-key");
    assert_eq!(code, 401, "with a token, only the token or listed keys");

    let open = Daemon::start(route);
    let rid = accepted(post(&open, "/v2/alerts", body, "team-a-key"));
    let id = status(&open, &rid, "anything")["alertId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(incident(&open, &id)["incident"]["route"], "team-a");
}
