//! `GET /healthz`: the paging verdict for load balancers, monitoring and people.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::intake::Intake;

/// `GET /healthz`: 200 while pages can go out, 503 with the reasons when paging is impaired
/// (see [`crate::health`]); a channel down while others page is 200 "degraded".
pub(super) async fn healthz(State(intake): State<Intake>) -> Response {
    let verdict = intake.health.verdict().await;
    let paging = intake.paging.as_ref().map(|p| p.borrow().clone());
    let channels = paging.as_ref().map(|p| p.channels()).unwrap_or_default();
    let outbox = intake
        .store
        .read(move |c, now| {
            let (n, oldest) = crate::store::outbox::depth(c, &channels)?;
            let sending = crate::store::outbox::oldest_sending(c)?;
            let nobody = crate::store::pages::nobody_reached(c)?;
            let held = crate::store::silences::held_count(c)?;
            Ok((
                n,
                oldest.map(|t| (now - t).num_seconds()),
                sending.map(|t| (now - t).num_seconds()),
                nobody,
                held,
            ))
        })
        .await
        .ok();
    let faults = intake.store.faults().borrow().clone();
    let modem = intake.modem.as_ref().map(|m| {
        let h = m.borrow();
        json!({ "state": format!("{:?}", h.state).to_lowercase(), "reason": h.reason, "since": h.since })
    });
    // Open incidents whose paging reached nobody: the box can page, but someone is not being
    // told about an alert. Not a 503 (the box works; a route or a person's channels do not),
    // but never "ok" either.
    let mut verdict = verdict;
    if let Some(nobody) = outbox.as_ref().map(|o| &o.3).filter(|n| !n.is_empty()) {
        let ids: Vec<String> = nobody.iter().take(10).map(|id| format!("#{id}")).collect();
        let more = nobody.len().saturating_sub(ids.len());
        verdict.degraded.push(format!(
            "nobody was paged for open incident(s) {}{}",
            ids.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    let status = if verdict.impaired() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let store = verdict
        .problems
        .iter()
        .find_map(|p| match p {
            crate::health::Problem::StoreCannotWrite { error } => Some(error.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "ok".to_string());
    (
        status,
        Json(json!({
            "status": verdict.word(),
            "problems": verdict.problems,
            "degraded": verdict.degraded,
            "store": store,
            "store_faults": (faults.count > 0).then(|| json!({
                "count": faults.count,
                "last": faults.last.map(|f| json!({ "at": f.at, "caller": f.caller.to_string(), "error": f.error.to_string() })),
            })),
            "paging": paging.map(|p| json!({ "impaired": p.impaired(), "ready": p.ready, "down": p.down.iter().map(|(c, why)| json!({"channel": c, "reason": why})).collect::<Vec<_>>() })),
            "modem": modem,
            "standby": intake.health.standby.as_ref().map(|s| crate::standby::status_json(&s.borrow())),
            "outbox": outbox.as_ref().map(|(n, age, sending, _, _)| json!({ "pending": n, "oldest_seconds": age, "oldest_sending_seconds": sending })),
            // Incidents whose paging waits for a silence to end: on purpose, but a silence
            // that holds more than meant must show here, not only on each timeline.
            "held_by_silence": outbox.as_ref().map(|o| o.4),
            "nobody_paged": outbox.as_ref().map(|o| &o.3),
        })),
    )
        .into_response()
}
