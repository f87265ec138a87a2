//! The `pagerbox` binary: parse the command line, start logging, hand over to the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pagerbox::cli::{self, Cli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli::prints_and_ends(&cli.command) {
        quiet_on_closed_pipe();
    }
    init_tracing();
    let result = if cli::is_async(&cli.command) {
        runtime().and_then(|rt| {
            let result = rt.block_on(cli::run_async(cli.command));
            // Dropping the runtime would wait without limit for blocking work still running (an
            // outbound POST to a receiver that hangs, a standby check): past systemd's stop
            // timeout, and the stop would end in SIGKILL. What mattered was stopped by `run`.
            rt.shutdown_timeout(SHUTDOWN_BLOCKING_WAIT);
            result
        })
    } else {
        cli::run_sync(cli.command)
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pagerbox: {}", cli::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// Restores the default action of `SIGPIPE` (end the process), which the Rust runtime sets to
/// "ignore": a one-shot command whose reader went away then ends like `cat` would, rather than
/// panicking in `println!`.
fn quiet_on_closed_pipe() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: set once at start, before any thread exists; SIG_DFL installs no handler code.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// How long the end of the process waits for blocking work still running after the daemon
/// stopped.
const SHUTDOWN_BLOCKING_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`). Under journald (stderr not a
/// terminal) the format is compact, without colours or timestamps (journald adds its own).
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.compact().with_ansi(false).without_time().init();
    }
}
