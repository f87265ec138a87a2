//! The status page end to end: the real daemon with a token, driven by headless Chromium over
//! WebDriver (chromedriver), plus plain-HTTP checks of CSRF, cookie flags, escaping and headers.
//!
//! Chromium and chromedriver come from Debian (`chromium`, `chromium-driver`); `./scripts/test.sh`
//! installs them. Under a bare `cargo test` without them the browser test fails and says so.

mod util;

use std::time::Duration;

use fantoccini::Locator;
use serde_json::json;
use util::{Browser, Daemon, BROWSER_TIMEOUT};

const TOKEN: &str = "s3cret-status-token";

/// The visible text of the incident's row on the page.
async fn row_text(
    client: &fantoccini::Client,
    id: i64,
) -> Result<String, fantoccini::error::CmdError> {
    client
        .find(Locator::Id(&format!("incident-{id}")))
        .await?
        .text()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_logs_in_sees_the_incident_and_acknowledges_it() {
    let browser = Browser::start().await;
    let client = browser.client.clone();
    let d = Daemon::start_with("", Some(TOKEN));
    let id = d.trigger(
        json!({"summary": "disk on db1 is 97% full", "dedup_key": "disk-db1", "service": "db"}),
    );

    let steps = async {
        client.goto(&d.url("/")).await?;
        // Not logged in: the summary is readable, but there is a login form and no buttons.
        let source = client.source().await?;
        assert!(source.contains("disk on db1 is 97% full"), "{source}");
        assert!(!source.contains("/acknowledge"), "{source}");
        let form = client.find(Locator::Id("login")).await?;
        form.find(Locator::Css("input[name=token]"))
            .await?
            .send_keys(TOKEN)
            .await?;
        form.find(Locator::Id("login-submit"))
            .await?
            .click()
            .await?;

        // Logged in: the incident row has an Acknowledge button.
        let ack = client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(&format!(
                "form[action='/ui/incidents/{id}/acknowledge'] button"
            )))
            .await?;
        let row = row_text(&client, id).await?;
        assert!(row.contains("disk on db1 is 97% full"), "{row}");
        assert!(row.contains("triggered"), "{row}");

        let cookie = client.get_named_cookie("pagerbox_session").await?;
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
        assert!(
            !cookie.value().contains(TOKEN),
            "the raw token is in the cookie"
        );

        ack.click().await?;
        client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(&format!(
                "#incident-{id} .status.acknowledged"
            )))
            .await?;
        let row = row_text(&client, id).await?;
        assert!(row.contains("acknowledged by status-page via web"), "{row}");
        // The Acknowledge button is gone; Resolve stays.
        assert!(client
            .find(Locator::Css(&format!(
                "form[action='/ui/incidents/{id}/acknowledge']"
            )))
            .await
            .is_err());
        Ok::<_, fantoccini::error::CmdError>(())
    };
    // A wedged browser must fail the test, not hang the suite.
    let result = tokio::time::timeout(BROWSER_TIMEOUT, steps)
        .await
        .unwrap_or_else(|_| Err(fantoccini::error::CmdError::WaitTimeout));
    if let Err(e) = &result {
        let at = client.current_url().await.map(|u| u.to_string());
        let source = client.source().await.unwrap_or_default();
        let _ = client.close().await;
        panic!("browser steps failed: {e} at {at:?}; the page was:\n{source}");
    }
    let _ = client.close().await;

    // The store has the acknowledgement with the status page as the actor.
    let (code, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["incident"]["status"], "acknowledged", "{v}");
    assert_eq!(v["incident"]["acknowledged"]["by"], "status-page", "{v}");
    assert_eq!(v["incident"]["acknowledged"]["via"], "web", "{v}");
}

// ---- Plain HTTP checks (no browser) ----

struct Answer {
    code: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).build()
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> Answer {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let headers = resp
        .headers_names()
        .into_iter()
        .flat_map(|n| {
            resp.all(&n)
                .into_iter()
                .map(|v| (n.clone(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    Answer {
        code: resp.status(),
        headers,
        body: resp.into_string().unwrap(),
    }
}

/// The first CSRF token in a page.
fn csrf(page: &str) -> String {
    let start = page.find(r#"name="csrf" value=""#).expect("a CSRF field") + 19;
    page[start..start + 64].to_string()
}

/// Logs in over plain HTTP; returns the `Set-Cookie` header and the `name=value` pair.
fn login(d: &Daemon) -> (String, String) {
    let page = answer(agent().get(&d.url("/")).call());
    let a = answer(
        agent()
            .post(&d.url("/login"))
            .send_form(&[("csrf", &csrf(&page.body)), ("token", TOKEN)]),
    );
    assert_eq!(a.code, 303, "{}", a.body);
    assert_eq!(a.header("location"), Some("/"));
    let set = a
        .header("set-cookie")
        .expect("a session cookie")
        .to_string();
    let pair = set.split(';').next().unwrap().to_string();
    (set, pair)
}

#[test]
fn forms_without_csrf_token_or_from_another_origin_are_refused() {
    let d = Daemon::start_with("", Some(TOKEN));
    let id = d.trigger(json!({"summary": "queue backlog", "dedup_key": "q1", "service": "db"}));
    let (set_cookie, cookie) = login(&d);
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(flag), "{set_cookie} lacks {flag}");
    }
    assert!(!set_cookie.contains(TOKEN));
    let url = d.url(&format!("/ui/incidents/{id}/acknowledge"));

    // No cookie: back to the page (which shows the login form), nothing changes.
    let a = answer(agent().post(&url).send_form(&[("csrf", "x")]));
    assert_eq!(a.code, 303);
    assert_eq!(a.header("location"), Some("/"));

    // Logged in but no CSRF token, or a wrong one: 403 with a clear message.
    let a = answer(agent().post(&url).set("Cookie", &cookie).send_form(&[]));
    assert_eq!(a.code, 403, "{}", a.body);
    assert!(
        a.body.contains("CSRF token is missing or stale"),
        "{}",
        a.body
    );
    let a = answer(
        agent()
            .post(&url)
            .set("Cookie", &cookie)
            .send_form(&[("csrf", &"0".repeat(64))]),
    );
    assert_eq!(a.code, 403);

    // The right token, but the browser says the form came from another site.
    let page = answer(agent().get(&d.url("/")).set("Cookie", &cookie).call());
    let token = csrf(&page.body);
    let a = answer(
        agent()
            .post(&url)
            .set("Cookie", &cookie)
            .set("Origin", "http://evil.example")
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 403);
    assert!(a.body.contains("another origin"), "{}", a.body);
    let a = answer(
        agent()
            .post(&url)
            .set("Cookie", &cookie)
            .set("Sec-Fetch-Site", "cross-site")
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 403);
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["status"], "triggered", "{v}");

    // A wrong login token is refused and sets no cookie.
    let anonymous = answer(agent().get(&d.url("/")).call());
    let a = answer(
        agent()
            .post(&d.url("/login"))
            .send_form(&[("csrf", &csrf(&anonymous.body)), ("token", "wrong")]),
    );
    assert_eq!(a.code, 401);
    assert!(a.header("set-cookie").is_none());
    assert!(a.body.contains("Wrong token."));

    // All of it right: resolved, as the status page.
    let a = answer(
        agent()
            .post(&d.url(&format!("/ui/incidents/{id}/resolve")))
            .set("Cookie", &cookie)
            .set("Origin", &format!("http://{}", d.http))
            .set("Sec-Fetch-Site", "same-origin")
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 303, "{}", a.body);
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["status"], "resolved", "{v}");
    assert_eq!(v["incident"]["resolved"]["by"], "status-page", "{v}");

    // Logout clears the cookie.
    let a = answer(
        agent()
            .post(&d.url("/logout"))
            .set("Cookie", &cookie)
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 303);
    assert!(a.header("set-cookie").unwrap().contains("Max-Age=0"));
}

/// Without a token the CSRF token is the same for every visitor: a page that DNS rebinding made
/// same-origin (its name now points here, so `Origin` equals `Host`) can read it off the status
/// page. Its posts are refused; the same form posted by the box's address works.
#[test]
fn without_a_token_a_rebound_page_cannot_post_the_status_page_forms() {
    let d = Daemon::start("");
    let id = d.trigger(json!({"summary": "queue backlog", "dedup_key": "q1", "service": "db"}));
    let port = d.http.port();
    let evil = format!("evil.example:{port}");
    let page = answer(
        agent()
            .get(&d.url("/"))
            .set("Host", &evil)
            .set("Sec-Fetch-Site", "same-origin")
            .call(),
    );
    assert_eq!(page.code, 200);
    let token = csrf(&page.body);
    let url = d.url(&format!("/ui/incidents/{id}/resolve"));
    let a = answer(
        agent()
            .post(&url)
            .set("Host", &evil)
            .set("Origin", &format!("http://{evil}"))
            .set("Sec-Fetch-Site", "same-origin")
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 403, "{}", a.body);
    assert!(a.body.contains("DNS rebinding"), "{}", a.body);
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["status"], "triggered", "{v}");
    // The person's own page, opened by address.
    let a = answer(
        agent()
            .post(&url)
            .set("Origin", &format!("http://{}", d.http))
            .set("Sec-Fetch-Site", "same-origin")
            .send_form(&[("csrf", &token)]),
    );
    assert_eq!(a.code, 303, "{}", a.body);
    let (_, v) = d.get(&format!("/v1/incidents/{id}"));
    assert_eq!(v["incident"]["status"], "resolved", "{v}");
}

#[test]
fn summaries_are_escaped_and_the_page_is_self_contained() {
    let d = Daemon::start("");
    d.trigger(json!({"summary": "<script>alert('x')</script> & more", "dedup_key": "xss", "service": "db"}));
    let a = answer(agent().get(&d.url("/")).call());
    assert_eq!(a.code, 200);
    assert!(
        a.body
            .contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; more"),
        "{}",
        a.body
    );
    assert!(!a.body.contains("<script"), "{}", a.body);
    // No external assets: nothing is loaded from anywhere.
    for needle in ["src=", "<link", "http://", "https://", "@import"] {
        assert!(!a.body.contains(needle), "page contains {needle}");
    }
    let csp = a.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(a.header("referrer-policy"), Some("no-referrer"));
    assert!(a.header("content-type").unwrap().starts_with("text/html"));
    // No token configured: buttons for everyone, still behind a CSRF token.
    assert!(a.body.contains("/ui/incidents/1/acknowledge"));
    assert!(a.body.contains("http-equiv=\"refresh\""));
    let a = answer(
        agent()
            .post(&d.url("/ui/incidents/1/acknowledge"))
            .send_form(&[]),
    );
    assert_eq!(a.code, 403);
    // The health and on-call sections are there.
    let a = answer(agent().get(&d.url("/status")).call());
    assert!(a.body.contains("id=\"health\""));
    assert!(a.body.contains("No schedules configured."));
}

const ONCALL: &str = r#"
[[users]]
id = "alice"
phone = "+4915100000011"
[[schedules]]
id = "primary"
name = "Primary rota"
time_zone = "Europe/Berlin"
[[schedules.layers]]
users = ["alice"]
shift = "1w"
start = "2026-01-05T09:00"
[[policies]]
id = "p"
[[policies.steps]]
schedules = ["primary"]
[[routes]]
id = "r"
policy = "p"
"#;

#[test]
fn on_call_section_matches_the_api() {
    let d = Daemon::start(ONCALL);
    let (_, v) = d.get("/v1/oncall");
    let user = v["schedules"][0]["on_call"]["user"]
        .as_str()
        .unwrap()
        .to_string();
    let a = answer(agent().get(&d.url("/")).call());
    assert!(a.body.contains("Primary rota"), "{}", a.body);
    assert!(
        a.body.contains(&format!("<strong>{user}</strong>")),
        "{}",
        a.body
    );
}

#[test]
fn modem_section_shows_registration_operator_signal_and_sim() {
    let d = Daemon::start(
        r#"
[modem]
device = "simulator"
health_interval = "1s"
[modem.simulator]
command_delay = "0ms"
"#,
    );
    let body = d.wait_for(30, "the page to show the modem up", || {
        let a = answer(agent().get(&d.url("/")).call());
        a.body
            .contains(r#"<span class="up">up</span>"#)
            .then_some(a.body)
    });
    let modem = &body[body.find(r#"id="modem""#).unwrap()..];
    let modem = &modem[..modem.find("</td>").unwrap()];
    assert!(modem.contains("Registered: yes"), "{modem}");
    assert!(modem.contains("dBm"), "{modem}");
    assert!(modem.contains("SIM: Ready"), "{modem}");
    assert!(modem.contains("operator: "), "{modem}");
}
