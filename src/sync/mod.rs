//! The sync core shared by both protocol generations: per-store push and
//! pull rules, subscriptions, and what the core needs of a socket (a
//! [`sink::Sink`]). Uses only the model and the storage interface; knows
//! nothing of sockets or wire formats beyond "one memo per format".
//!
//! Entry points for what comes next: [`store::Store::appended_elsewhere`]
//! and [`store::Store::reset_elsewhere`] (another instance, the command
//! line), [`hub::Hub::loaded`] (only stores in use need notices).

#[cfg(test)]
mod fuzz;
pub mod hub;
pub mod pull;
pub mod reads;
pub mod sink;
pub mod store;
#[cfg(test)]
pub(crate) mod testing;

/// The core's bounds, each with its default.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Rows read from storage per query while serving a pull. Default 1,000.
    pub read_rows: usize,
    /// Live batches a subscription may hold (by estimated JSON bytes) while
    /// its pull answer is being sent; past it they are dropped and read from
    /// the log when the answer ends. Default 4 MiB.
    pub max_held_bytes: usize,
    /// Store entries kept in memory; past it, entries no socket uses are
    /// forgotten. Default 10,000.
    pub max_stores: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            read_rows: 1_000,
            max_held_bytes: 4 << 20,
            max_stores: 10_000,
        }
    }
}
