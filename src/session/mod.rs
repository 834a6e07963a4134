//! Per-connection glue between a wire codec (`crate::protocol`) and the sync
//! core (`crate::sync`): decode a frame, apply it to the store, queue the
//! answers on the socket's outbox. One session type per protocol transport.
//!
//! Sessions do not touch sockets: they read text and write to an
//! [`Outbox`](crate::sync::outbox::Outbox), which needs no socket (the
//! hub's tests drive sinks over bare outboxes).

pub mod v03;
mod v04_common;
pub mod v04_http;
pub mod v04_ws;

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::sync::hub::Hub;

/// What every session needs: the stores and the settings.
pub struct Ctx {
    pub hub: Hub,
    pub config: Config,
}

impl Ctx {
    pub fn new(hub: Hub, config: Config) -> Arc<Ctx> {
        Arc::new(Ctx { hub, config })
    }

    /// How long a connection's own reply may wait for room in its queue.
    pub fn reply_timeout(&self) -> Duration {
        self.config.limits.write_timeout
    }
}

/// Memo slot of each wire generation in [`crate::sync::hub::LiveBatch`].
pub(crate) const MEMO_V03: usize = 0;
pub(crate) const MEMO_V04: usize = 1;
