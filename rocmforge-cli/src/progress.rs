//! Progress bars (indicatif, on stderr) and `RUST_LOG` tracing set-up.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar of `len` steps labelled `what`; hidden when `quiet` or when stderr is not a terminal.
pub fn bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{prefix} [{bar:40}] {pos}/{len} {elapsed} {wide_msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// A bar of bytes (a model's weights being uploaded), hidden like [`bar`]; its length is set
/// by the first [`BytesBar::update`].
#[derive(Debug)]
pub struct BytesBar {
    bar: ProgressBar,
}

impl BytesBar {
    /// A bar labelled `what`.
    pub fn new(what: &str, quiet: bool) -> Self {
        let bar = bar(0, what, quiet);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix} [{bar:40}] {bytes}/{total_bytes} {elapsed} {wide_msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        BytesBar { bar }
    }

    /// `done` of `total` bytes uploaded.
    pub fn update(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    /// Another handle on the same bar (for a loader running on another thread).
    pub fn clone_handle(&self) -> Self {
        BytesBar {
            bar: self.bar.clone(),
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Sends `tracing` events to stderr, filtered by `RUST_LOG` (default: warnings only).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second initialisation (tests calling main twice) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
