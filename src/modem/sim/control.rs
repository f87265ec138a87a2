//! The simulator's control protocol: JSON lines over a Unix socket, one request line, one
//! response line, any number of requests per connection.
//!
//! Requests carry a `cmd` tag, e.g. `{"cmd":"sms_in","from":"+4917…","text":"ack 12"}`,
//! `{"cmd":"fault","fault":{"fault":"submit_cms500","count":2}}`, `{"cmd":"log"}`. Responses are
//! `{"ok":true}`, `{"ok":true,"log":[…]}` or `{"ok":false,"error":"…"}`. The server is a thin
//! adapter onto [`SimHandle`]; it owns no simulator state. docs/modem.md lists every request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use super::types::{CallBehaviour, DeliverOptions, Fault, NetworkEntry, SimError, UrcPlacement};
use super::SimHandle;

/// Longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;

/// One control request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum ControlRequest {
    /// An incoming SMS.
    SmsIn {
        /// Sender.
        from: String,
        /// Text.
        text: String,
        /// Encoding and URC placement.
        #[serde(default)]
        options: DeliverOptions,
    },
    /// An incoming call (`from` absent: number withheld).
    CallIn {
        /// Caller number.
        #[serde(default)]
        from: Option<String>,
    },
    /// The far phone picks up the outgoing call.
    Answer,
    /// The far side declines or hangs up.
    Reject,
    /// The far phone lets the outgoing call ring out.
    Ignore,
    /// The far side presses a key.
    Dtmf {
        /// 0-9, *, #, A-D.
        key: char,
    },
    /// What the far phone does with the next outgoing calls.
    SetCallBehaviour {
        /// The behaviour.
        behaviour: CallBehaviour,
    },
    /// Inject a fault.
    Fault {
        /// The fault.
        fault: Fault,
    },
    /// Clear all faults.
    Heal,
    /// What the network answers to a USSD code.
    SetUssd {
        /// The code, e.g. `*100#`.
        code: String,
        /// The answer.
        reply: crate::modem::sim::UssdReply,
    },
    /// A burst of `count` status reports (delivery reports) for `to`, written at once.
    StatusReports {
        /// How many (at most 10 000).
        count: u32,
        /// Reference of the first; the others count up from it (wrapping at 255).
        #[serde(default)]
        first_reference: u8,
        /// The recipient the reports name.
        to: String,
    },
    /// Write a raw URC line.
    Urc {
        /// The line, without framing.
        line: String,
        /// Now or inside the next response.
        #[serde(default)]
        placement: UrcPlacement,
    },
    /// The network log.
    Log,
    /// The number an outgoing call is ringing at now, if any.
    Ringing,
}

/// The answer to one request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ControlResponse {
    /// Whether the request was carried out.
    pub ok: bool,
    /// Why not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The network log, for `log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<NetworkEntry>>,
    /// The number an outgoing call is ringing at, for `ringing` (absent: none is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ringing: Option<String>,
}

impl ControlResponse {
    fn from_result(r: Result<(), SimError>) -> Self {
        match r {
            Ok(()) => Self {
                ok: true,
                ..Self::default()
            },
            Err(e) => Self {
                ok: false,
                error: Some(e.to_string()),
                ..Self::default()
            },
        }
    }
}

/// Carries out one request on `sim`.
pub async fn handle(sim: &SimHandle, req: ControlRequest) -> ControlResponse {
    let r = match req {
        ControlRequest::SmsIn {
            from,
            text,
            options,
        } => sim.deliver_sms(&from, &text, options).await,
        ControlRequest::CallIn { from } => sim.call_in(from.as_deref()).await,
        ControlRequest::Answer => sim.answer().await,
        ControlRequest::Reject => sim.reject().await,
        ControlRequest::Ignore => sim.ignore().await,
        ControlRequest::Dtmf { key } => sim.dtmf(key).await,
        ControlRequest::SetCallBehaviour { behaviour } => sim.set_call_behaviour(behaviour).await,
        ControlRequest::Fault { fault } => sim.fault(fault).await,
        ControlRequest::Heal => sim.heal().await,
        ControlRequest::SetUssd { code, reply } => sim.set_ussd(&code, reply).await,
        ControlRequest::StatusReports {
            count,
            first_reference,
            to,
        } => sim.status_report_burst(count, first_reference, &to).await,
        ControlRequest::Urc { line, placement } => sim.inject_urc(&line, placement).await,
        ControlRequest::Ringing => {
            return match sim.ringing().await {
                Ok(ringing) => ControlResponse {
                    ok: true,
                    ringing,
                    ..ControlResponse::default()
                },
                Err(e) => ControlResponse::from_result(Err(e)),
            }
        }
        ControlRequest::Log => {
            return match sim.network_log().await {
                Ok(log) => ControlResponse {
                    ok: true,
                    error: None,
                    log: Some(log),
                    ringing: None,
                },
                Err(e) => ControlResponse::from_result(Err(e)),
            }
        }
    };
    ControlResponse::from_result(r)
}

/// Binds `path` (replacing a stale socket file) and serves requests until `cancel` fires;
/// then removes the socket file. Returns once bound.
pub async fn serve(path: &Path, sim: SimHandle, cancel: CancellationToken) -> Result<(), SimError> {
    let err = |source| SimError::Control {
        path: path.to_path_buf(),
        source,
    };
    if path.exists() {
        std::fs::remove_file(path).map_err(err)?;
    }
    let listener = UnixListener::bind(path).map_err(err)?;
    let path: PathBuf = path.to_path_buf();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                conn = listener.accept() => match conn {
                    Ok((stream, _)) => {
                        let sim = sim.clone();
                        let cancel = cancel.clone();
                        tokio::spawn(async move {
                            tokio::select! {
                                _ = cancel.cancelled() => {}
                                r = connection(stream, sim) => if let Err(e) = r {
                                    tracing::debug!(error = %e, "simulator control connection ended");
                                },
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "simulator control accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok(())
}

async fn connection(stream: UnixStream, sim: SimHandle) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let resp = if line.len() > MAX_REQUEST {
            ControlResponse {
                ok: false,
                error: Some("request too long".into()),
                ..ControlResponse::default()
            }
        } else {
            match serde_json::from_str::<ControlRequest>(&line) {
                Ok(req) => handle(&sim, req).await,
                Err(e) => ControlResponse {
                    ok: false,
                    error: Some(format!("bad request: {e}")),
                    ..ControlResponse::default()
                },
            }
        };
        let mut out = serde_json::to_vec(&resp).map_err(std::io::Error::other)?;
        out.push(b'\n');
        w.write_all(&out).await?;
    }
    Ok(())
}

/// Client side: sends one request to the socket at `path` and returns the response.
pub async fn request(path: &Path, req: &ControlRequest) -> Result<ControlResponse, SimError> {
    let err = |source| SimError::Control {
        path: path.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(path).await.map_err(err)?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(SimError::Protocol)?;
    line.push(b'\n');
    w.write_all(&line).await.map_err(err)?;
    let mut lines = BufReader::new(r).lines();
    let answer = lines
        .next_line()
        .await
        .map_err(err)?
        .ok_or(SimError::Closed)?;
    serde_json::from_str(&answer).map_err(SimError::Protocol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_json_form() {
        let r: ControlRequest =
            serde_json::from_str(r#"{"cmd":"sms_in","from":"+491","text":"ack"}"#).unwrap();
        assert_eq!(
            r,
            ControlRequest::SmsIn {
                from: "+491".into(),
                text: "ack".into(),
                options: DeliverOptions::default()
            }
        );
        let f: ControlRequest =
            serde_json::from_str(r#"{"cmd":"fault","fault":{"fault":"submit_cms500","count":2}}"#)
                .unwrap();
        assert_eq!(
            f,
            ControlRequest::Fault {
                fault: Fault::SubmitCms500 { count: 2 }
            }
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(
                r#"{"cmd":"status_reports","count":500,"to":"+491"}"#
            )
            .unwrap(),
            ControlRequest::StatusReports {
                count: 500,
                first_reference: 0,
                to: "+491".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&ControlRequest::Dtmf { key: '1' }).unwrap(),
            r#"{"cmd":"dtmf","key":"1"}"#
        );
        assert_eq!(
            serde_json::to_string(&ControlResponse {
                ok: true,
                ..Default::default()
            })
            .unwrap(),
            r#"{"ok":true}"#
        );
    }
}
