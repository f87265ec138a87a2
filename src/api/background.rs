//! Reads for people and scrapers run behind the paging path.
//!
//! The status page, reports, stats and `/metrics` can each cost milliseconds of queries and
//! rendering, and nothing limits how often they are asked for. On the daemon's own runtime a
//! burst of them occupies the worker threads that the escalation engine, the senders and the
//! modem driver need to move a page along, and on a small box those are all the cores there are.
//! So these handlers run on a runtime of their own: one thread, at a lower scheduling priority
//! (`supervisor::READS_NICE`). However many such reads arrive, together they use at most that one thread (their
//! queries are serialised on the store's read connection anyway), and when the paging path and a
//! read both want the CPU, the kernel runs the paging path first. Nothing is cached: every
//! answer is rendered from the state after the request arrived; a read only waits longer while
//! the box is busy.
//!
//! The thread hosts only this runtime and lives as long as the process; a handler that panics
//! ends its own task (answered 500 here), not the thread. If the thread cannot be started, the
//! handlers run where they always did.

use std::sync::OnceLock;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tokio::runtime::Handle;

use super::respond::error;

/// The reads' runtime, started on first use; `None` when it could not be.
fn runtime() -> Option<&'static Handle> {
    static RUNTIME: OnceLock<Option<Handle>> = OnceLock::new();
    RUNTIME.get_or_init(start).as_ref()
}

fn start() -> Option<Handle> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::warn!(error = %e, "no runtime for reads; they share the paging path's");
            return None;
        }
    };
    let handle = rt.handle().clone();
    let spawned = std::thread::Builder::new()
        .name("pagerbox-reads".into())
        .spawn(move || {
            crate::supervisor::yield_to_paging();
            rt.block_on(std::future::pending::<()>())
        });
    match spawned {
        Ok(_) => Some(handle),
        Err(e) => {
            tracing::warn!(error = %e, "no thread for reads; they share the paging path's");
            None
        }
    }
}

/// The middleware for the read routes that may be expensive: runs the rest of the request on
/// the reads' runtime and hands the answer back.
pub async fn behind_paging(request: Request, next: Next) -> Response {
    let Some(rt) = runtime() else {
        return next.run(request).await;
    };
    match rt.spawn(next.run(request)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "a read's handler failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the read failed; see the daemon's log",
                vec![],
            )
        }
    }
}
