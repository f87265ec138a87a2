//! A Unix-socket control for the fake panel, so end-to-end tests that run the real binary
//! (with `gpio.backend = "fake"`) can press the button and watch the LED.
//!
//! The daemon calls [`serve`] with a path it chooses (e.g. `<state_dir>/fake-panel.sock`);
//! tests connect with [`FakePanelClient`]. The protocol is one line in, one line out:
//!
//! | request      | reply                                                    |
//! |--------------|----------------------------------------------------------|
//! | `press`      | `ok`                                                     |
//! | `release`    | `ok`                                                     |
//! | `led`        | `on` or `off`                                            |
//! | `buzzer`     | `on` or `off`                                            |
//! | `led-writes` | `<ms>:<0/1>` tokens separated by spaces (may be empty)  |
//! | `buzzer-writes` | same, for the buzzer                                 |
//! | anything else | `error unknown command`                                |
//!
//! Times in the write lists are milliseconds since the fake was created. This is a test
//! device: there is no authentication, so it exists only with the fake backend, and the
//! socket is created with the daemon's umask in a directory the test owns.

use std::io::{BufRead, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream as TokioUnixStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{FakePanel, Write};

/// Binds `path` (replacing a stale socket file) and serves the fake panel there until
/// `shutdown`; connection handlers run on `tracker`. The socket file is removed on the way
/// out. Fails if the path cannot be bound.
pub fn serve(
    fake: FakePanel,
    path: &Path,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> std::io::Result<JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    let path = path.to_path_buf();
    let conns = tracker.clone();
    Ok(tracker.spawn(accept_loop(fake, listener, path, shutdown, conns)))
}

async fn accept_loop(
    fake: FakePanel,
    listener: UnixListener,
    path: PathBuf,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    tracing::info!(path = %path.display(), "fake panel control listening");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tracker.spawn(handle(fake.clone(), stream, shutdown.clone()));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "fake panel control accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = std::fs::remove_file(&path);
}

async fn handle(fake: FakePanel, stream: TokioUnixStream, shutdown: CancellationToken) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            line = lines.next_line() => line,
        };
        let Ok(Some(line)) = line else { return };
        let mut reply = answer(&fake, line.trim());
        reply.push('\n');
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The reply to one request line (without the newline).
fn answer(fake: &FakePanel, request: &str) -> String {
    let level = |on: bool| if on { "on" } else { "off" }.to_string();
    match request {
        "press" => {
            fake.press();
            "ok".into()
        }
        "release" => {
            fake.release();
            "ok".into()
        }
        "led" => level(fake.led_is_on()),
        "buzzer" => level(fake.buzzer_is_on()),
        "led-writes" => format_writes(fake, &fake.led_writes()),
        "buzzer-writes" => format_writes(fake, &fake.buzzer_writes()),
        _ => "error unknown command".into(),
    }
}

fn format_writes(fake: &FakePanel, writes: &[Write]) -> String {
    let created = fake.created();
    writes
        .iter()
        .map(|w| {
            format!(
                "{}:{}",
                w.at.saturating_duration_since(created).as_millis(),
                u8::from(w.on)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a `led-writes` reply into (time since the fake was created, level).
fn parse_writes(line: &str) -> std::io::Result<Vec<(Duration, bool)>> {
    line.split_whitespace()
        .map(|tok| {
            let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, tok.to_string());
            let (ms, on) = tok.split_once(':').ok_or_else(bad)?;
            let ms: u64 = ms.parse().map_err(|_| bad())?;
            let on = match on {
                "1" => true,
                "0" => false,
                _ => return Err(bad()),
            };
            Ok((Duration::from_millis(ms), on))
        })
        .collect()
}

/// A blocking client of the control socket, for `tests/`. Each call is one request and
/// one reply; errors are I/O errors or `InvalidData` for an unexpected reply.
#[derive(Debug)]
pub struct FakePanelClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl FakePanelClient {
    /// Connects to the socket the daemon serves.
    pub fn connect(path: &Path) -> std::io::Result<Self> {
        let writer = UnixStream::connect(path)?;
        writer.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(writer.try_clone()?);
        Ok(FakePanelClient { reader, writer })
    }

    fn request(&mut self, line: &str) -> std::io::Result<String> {
        writeln!(self.writer, "{line}")?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(reply.trim_end().to_string())
    }

    fn expect_ok(&mut self, line: &str) -> std::io::Result<()> {
        match self.request(line)?.as_str() {
            "ok" => Ok(()),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                other.to_string(),
            )),
        }
    }

    fn level(&mut self, line: &str) -> std::io::Result<bool> {
        match self.request(line)?.as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            other => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                other.to_string(),
            )),
        }
    }

    /// Raw edge: button down.
    pub fn press(&mut self) -> std::io::Result<()> {
        self.expect_ok("press")
    }

    /// Raw edge: button up.
    pub fn release(&mut self) -> std::io::Result<()> {
        self.expect_ok("release")
    }

    /// Whether the LED is lit now.
    pub fn led_is_on(&mut self) -> std::io::Result<bool> {
        self.level("led")
    }

    /// Whether the buzzer sounds now.
    pub fn buzzer_is_on(&mut self) -> std::io::Result<bool> {
        self.level("buzzer")
    }

    /// Every LED write so far: (time since the fake was created, level).
    pub fn led_writes(&mut self) -> std::io::Result<Vec<(Duration, bool)>> {
        parse_writes(&self.request("led-writes")?)
    }

    /// Every buzzer write so far.
    pub fn buzzer_writes(&mut self) -> std::io::Result<Vec<(Duration, bool)>> {
        parse_writes(&self.request("buzzer-writes")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GpioBackend, GpioConfig};
    use crate::panel::{spawn, PanelEvent, PanelState};
    use tokio::sync::watch;

    #[tokio::test]
    async fn socket_drives_the_fake_panel_of_a_running_task() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fake-panel.sock");
        let cfg = GpioConfig {
            backend: GpioBackend::Fake,
            button_pin: 17,
            button_active_low: true,
            long_press: Some(Duration::from_secs(3)),
            led_pin: 27,
            buzzer_pin: None,
            buzzer_after: Duration::from_secs(600),
        };
        let (state, rx) = watch::channel(PanelState {
            open_acked: 1,
            ..PanelState::default()
        });
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut panel = spawn(&cfg, rx, shutdown.clone(), &tracker)
            .unwrap()
            .unwrap();
        let fake = panel.fake.clone().unwrap();
        serve(fake, &path, shutdown.clone(), &tracker).unwrap();

        let client_path = path.clone();
        let mut client = tokio::task::spawn_blocking(move || {
            let mut c = FakePanelClient::connect(&client_path).unwrap();
            assert!(c.led_is_on().unwrap(), "steady while all acked");
            assert!(!c.buzzer_is_on().unwrap());
            c.press().unwrap();
            std::thread::sleep(Duration::from_millis(150));
            c.release().unwrap();
            c
        })
        .await
        .unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), panel.events.recv()).await;
        assert_eq!(ev.unwrap(), Some(PanelEvent::AckAll));

        state.send_replace(PanelState::default());
        tokio::time::sleep(Duration::from_millis(50)).await;
        let writes = tokio::task::spawn_blocking(move || {
            let w = client.led_writes().unwrap();
            assert_eq!(client.request("bogus").unwrap(), "error unknown command");
            w
        })
        .await
        .unwrap();
        let levels: Vec<bool> = writes.iter().map(|(_, on)| *on).collect();
        assert_eq!(levels, vec![false, true, false]);

        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .unwrap();
        assert!(!path.exists(), "socket file removed at shutdown");
    }

    #[test]
    fn write_lists_parse_and_reject_garbage() {
        assert_eq!(
            parse_writes("0:0 1000:1").unwrap(),
            vec![(Duration::ZERO, false), (Duration::from_secs(1), true)]
        );
        assert!(parse_writes("").unwrap().is_empty());
        assert!(parse_writes("12:2").is_err());
        assert!(parse_writes("x:1").is_err());
        assert!(parse_writes("12").is_err());
    }
}
