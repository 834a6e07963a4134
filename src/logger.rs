//! A minimal `log` backend: one line per record on stderr, which systemd's
//! journal captures. Level from `LOG_LEVEL` (see `config`).

use std::io::Write as _;

use crate::timefmt;

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
            // Dependencies (postgres, tungstenite) log chatty internals at debug/trace.
            && (metadata.level() <= log::Level::Info || metadata.target().starts_with("livestore_sync"))
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}\n",
            timefmt::iso8601_now(),
            record.level(),
            record.args()
        );
        // One write per line so lines from different threads never interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls only change nothing.
pub fn init(level: log::LevelFilter) {
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}
