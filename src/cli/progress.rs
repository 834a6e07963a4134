//! Progress of long work (export, import, copy, check) on a terminal, and
//! silence when stderr is not one (a pipe, a log, a test).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar counting events; hidden unless stderr is a terminal.
pub struct Progress(ProgressBar);

impl Progress {
    pub fn new(total: u64, what: &str) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} events, {per_sec}, eta {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(what.to_string());
        Progress(bar)
    }

    pub fn inc(&self, n: u64) {
        self.0.inc(n)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear()
    }
}

fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}
