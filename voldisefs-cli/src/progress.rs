//! Transfer progress on stderr, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A byte progress bar that erases itself when dropped, however the transfer ended.
pub(crate) struct TransferBar {
    /// The bar; clones of it share its state.
    bar: ProgressBar,
}

impl TransferBar {
    /// A bar for a transfer of `len` bytes (unknown: a counter). It draws nothing when
    /// `quiet` or when stderr is not a terminal, so scripts and logs stay clean.
    pub(crate) fn new(len: Option<u64>, verb: &str, quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(len, target);
        let template = if len.is_some() {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{msg} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(verb.to_owned());
        Self { bar }
    }

    /// A handle that advances this bar (for a stream that outlives a borrow).
    pub(crate) fn handle(&self) -> ProgressBar {
        self.bar.clone()
    }

    /// Counts `bytes` more as transferred.
    pub(crate) fn inc(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

impl Drop for TransferBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}
