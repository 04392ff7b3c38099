//! Waiting for Ctrl-C (SIGINT) or SIGTERM, for the commands that serve until stopped.

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The stop signals, registered once so a second signal can be told apart from the first.
pub(crate) struct StopSignals {
    /// SIGINT (Ctrl-C).
    interrupt: Signal,
    /// SIGTERM.
    terminate: Signal,
}

impl StopSignals {
    /// Installs the handlers; from now on these signals no longer kill the process.
    pub(crate) fn install() -> anyhow::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
        })
    }

    /// Waits for the next stop signal and names it.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
