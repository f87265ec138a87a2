//! End-to-end: the Splunk On-Call (VictorOps) compatible REST endpoint through the real binary,
//! with bodies captured from Alertmanager's victorops notifier and the REST Endpoint Integration
//! Guide's examples (tests/fixtures/victorops/PROVENANCE.md says where each came from).

mod util;

use serde_json::{json, Value};
use util::{fixture, fixture_request_path, secret_file, Daemon};

const API_KEY: &str = "vo-api-key";
const BASE: &str = "/integrations/generic/20131114/alert";

fn config(extra: &str) -> String {
    let alertmanager = "[[routes]]\nid = \"alertmanager\"\npolicy = \"p\"\nmatch = { routing_key = \"vo-route\" }\n";
    format!("{}{extra}\n", util::routed_by_key(alertmanager))
}

/// A daemon whose REST endpoint takes `vo-api-key` (read from a file).
fn daemon() -> (Daemon, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let key = secret_file(keys.path(), "vo.key", API_KEY);
    let d = Daemon::start(&config(&format!(
        "[victorops]\napi_key_file = \"{}\"\n",
        key.display()
    )));
    (d, keys)
}

fn send(d: &Daemon, routing_key: &str, body: &[u8]) -> (u16, Value) {
    d.post_with_headers(&format!("{BASE}/{API_KEY}/{routing_key}"), body, &[])
}

/// Checks the success answer and returns the entity id it names.
fn success(answer: (u16, Value)) -> String {
    let (code, v) = answer;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["result"], "success", "{v}");
    v["entity_id"].as_str().unwrap().to_string()
}

fn all_incidents(d: &Daemon) -> Vec<Value> {
    let (code, v) = d.get("/v1/incidents?status=all");
    assert_eq!(code, 200);
    v["incidents"].as_array().unwrap().clone()
}

fn by_key(d: &Daemon, key: &str) -> Value {
    let i = all_incidents(d)
        .into_iter()
        .find(|i| i["dedup_key"] == key)
        .unwrap_or_else(|| panic!("no incident with key {key}"));
    let (_, v) = d.get(&format!("/v1/incidents/{}", i["id"]));
    v
}

#[test]
fn alertmanager_victorops_notifier_triggers_and_recovers() {
    let (d, _keys) = daemon();
    // Alertmanager posts to api_url + api_key + "/" + routing_key.
    let path = fixture_request_path("victorops/alertmanager-victorops-critical.headers");
    assert_eq!(path, format!("{BASE}/{API_KEY}/vo-route"));
    let entity = success(d.post_with_headers(
        &path,
        &fixture("victorops/alertmanager-victorops-critical.json"),
        &[],
    ));
    assert_eq!(
        entity,
        "befc1ba12ebba1e7ed34b47763d3db4825adcc6a89c10b0c0949a5a8eafae19c"
    );
    let v = by_key(&d, &entity);
    let i = &v["incident"];
    assert_eq!(
        (&i["status"], &i["severity"], &i["route"]),
        (
            &json!("triggered"),
            &json!("critical"),
            &json!("alertmanager")
        )
    );
    assert_eq!(
        i["summary"],
        "[FIRING:1] HighLoad (web1:9100 node warning vo)"
    );
    assert_eq!(i["source"], "Alertmanager");
    assert!(i["details"]["state_message"]
        .as_str()
        .unwrap()
        .contains("Alerts Firing"));

    let path = fixture_request_path("victorops/alertmanager-victorops-recovery.headers");
    let again = success(d.post_with_headers(
        &path,
        &fixture("victorops/alertmanager-victorops-recovery.json"),
        &[],
    ));
    assert_eq!(again, entity);
    assert_eq!(by_key(&d, &entity)["incident"]["status"], "resolved");
}

#[test]
fn documented_lifecycle_critical_info_acknowledgement_recovery() {
    let (d, _keys) = daemon();
    let entity = success(send(
        &d,
        "database",
        &fixture("victorops/docs-critical.json"),
    ));
    assert_eq!(entity, "disk space/db01.mycompany.com");
    let v = by_key(&d, &entity);
    assert_eq!(
        (&v["incident"]["severity"], &v["incident"]["route"]),
        (&json!("critical"), &json!("database"))
    );
    assert_eq!(
        v["incident"]["summary"],
        "Critically Low Disk Space on DB01"
    );
    assert_eq!(
        v["incident"]["details"]["state_start_time_utc"],
        "2016-03-29T22:42:00+00:00"
    );

    // INFO about the open entity: a note on its timeline, no second incident, no new page.
    let info = json!({"message_type": "info", "entity_id": entity, "state_message": "df says 99%"});
    success(send(&d, "database", info.to_string().as_bytes()));
    assert_eq!(all_incidents(&d).len(), 1);
    let v = by_key(&d, &entity);
    assert!(v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "note" && e["message"] == "INFO: df says 99%"));

    // INFO about an entity with nothing open: kept, but no incident (nobody is paged).
    let other = success(send(&d, "database", &fixture("victorops/docs-info.json")));
    assert_eq!(other, "deploy/db01.mycompany.com");
    assert_eq!(all_incidents(&d).len(), 1, "INFO never opens an incident");

    success(send(
        &d,
        "database",
        &fixture("victorops/docs-acknowledgement.json"),
    ));
    let v = by_key(&d, &entity);
    assert_eq!(
        (
            &v["incident"]["status"],
            &v["incident"]["acknowledged"]["by"],
            &v["incident"]["acknowledged"]["via"]
        ),
        (&json!("acknowledged"), &json!("alice"), &json!("victorops"))
    );
    assert!(v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "note" && e["message"] == "Looking at the disk now"));

    success(send(
        &d,
        "database",
        &fixture("victorops/docs-recovery.json"),
    ));
    assert_eq!(by_key(&d, &entity)["incident"]["status"], "resolved");

    // After an INFO for it, a CRITICAL for the same entity still opens (and pages) an incident.
    let crit = json!({"message_type": "CRITICAL", "entity_id": other, "entity_display_name": "deploy broke db01"});
    success(send(&d, "database", crit.to_string().as_bytes()));
    let v = by_key(&d, &other);
    assert_eq!(v["incident"]["status"], "triggered");
    assert!(!v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "recorded"));
}

#[test]
fn warning_lowercase_and_missing_entity_id() {
    let (d, _keys) = daemon();
    let e = success(send(
        &d,
        "database",
        br#"{"message_type":"warning","entity_id":"load/web1","state_message":"load is 9"}"#,
    ));
    let v = by_key(&d, &e);
    assert_eq!(v["incident"]["severity"], "warning");
    assert_eq!(v["incident"]["summary"], "load is 9");
    // Only message_type is required: an entity id is assigned and returned.
    let assigned = success(send(&d, "database", br#"{"message_type":"critical"}"#));
    assert!(assigned.starts_with("pagerbox-"), "{assigned}");
    assert_eq!(by_key(&d, &assigned)["incident"]["status"], "triggered");
    // Without a routing key segment: routed by the other facts (here the default route).
    let (code, v) = d.post_with_headers(
        &format!("{BASE}/{API_KEY}"),
        br#"{"message_type":"CRITICAL","entity_id":"no-route"}"#,
        &[],
    );
    assert_eq!((code, &v["result"]), (200, &json!("success")), "{v}");
    assert_eq!(by_key(&d, "no-route")["incident"]["route"], "default");
}

#[test]
fn bad_key_and_bad_bodies_get_failure_answers() {
    let (d, _keys) = daemon();
    let body = fixture("victorops/docs-critical.json");
    let (code, v) = d.post_with_headers(&format!("{BASE}/wrong-key/database"), &body, &[]);
    assert_eq!(code, 401, "{v}");
    assert_eq!(v["result"], "failure");
    assert!(v["message"].is_string());
    for bad in [
        &b"{\"message_type\": "[..],
        br#"{"entity_id":"x"}"#,
        br#"{"message_type":"PANIC","entity_id":"x"}"#,
        br#"{"message_type":"RECOVERY"}"#,
    ] {
        let (code, v) = send(&d, "database", bad);
        assert_eq!(code, 400, "{}: {v}", String::from_utf8_lossy(bad));
        assert_eq!(v["result"], "failure");
        assert!(v["message"].is_string(), "{v}");
    }
    assert!(all_incidents(&d).is_empty(), "nothing refused was stored");
    // ACKNOWLEDGEMENT/RECOVERY for an entity never seen: accepted, nothing to do.
    success(send(
        &d,
        "database",
        br#"{"message_type":"RECOVERY","entity_id":"never-seen"}"#,
    ));
    assert!(all_incidents(&d).is_empty());
}

#[test]
fn without_api_key_file_the_write_token_is_the_api_key() {
    let d = Daemon::start_with(&config(""), Some("tok"));
    let body = fixture("victorops/docs-critical.json");
    let (code, _) = d.post_with_headers(&format!("{BASE}/{API_KEY}/database"), &body, &[]);
    assert_eq!(code, 401);
    success(d.post_with_headers(&format!("{BASE}/tok/database"), &body, &[]));
    // A write the cross-site guard refuses is logged, its path without the key in it.
    let (code, _) = d.post_with_headers(
        &format!("{BASE}/tok/database"),
        &body,
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(code, 415);
    d.wait_for(5, "the refusal in the log", || {
        d.log().contains("refused a write").then_some(())
    });
    let log = d.log();
    assert!(log.contains(&format!("{BASE}/<key>/database")), "{log}");
    assert!(!log.contains("/tok/"), "{log}");
}
