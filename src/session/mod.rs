//! Per-connection protocol state machines, sans-IO: text in (a decoded
//! frame or an HTTP body), store calls, text out through a
//! [`Sink`](crate::sync::sink::Sink). One session type per protocol
//! transport. They never touch a socket, so each state is unit-tested with a
//! recording sink over in-memory storage (`sync::testing`).
//!
//! Uses the protocol codecs, the sync core and the model; the server gives
//! each connection its session.

#[cfg(test)]
mod fuzz;
pub mod v03;
mod v04_common;
pub mod v04_http;
pub mod v04_ws;

use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};

use crate::logfmt;
use crate::metrics::{Metrics, Proto, PushRejected};
use crate::model::ChainError;
use crate::sync::hub::Hub;
use crate::sync::store::PushError;

/// Counts a push's outcome (`livestore_pushes_accepted_total` /
/// `_rejected_total`); a storage failure also goes to the recent errors.
/// Returns `result` as it was.
pub(crate) fn push_counted(
    m: &Metrics,
    proto: Proto,
    result: Result<(), PushError>,
    label: &str,
) -> Result<(), PushError> {
    match &result {
        Ok(()) => m.push_accepted(proto),
        Err(PushError::Chain(ChainError::WrongParent { .. })) => {
            m.push_rejected(proto, PushRejected::WrongParent)
        }
        Err(PushError::Chain(_)) => m.push_rejected(proto, PushRejected::BrokenChain),
        Err(PushError::BackendIdMismatch { .. }) => {
            m.push_rejected(proto, PushRejected::BackendIdMismatch)
        }
        Err(PushError::Storage(e)) => {
            m.push_rejected(proto, PushRejected::StorageError);
            m.error(&format!("push failed: {e}"), label);
        }
    }
    result
}

/// What every session needs: the stores and the session settings.
pub struct Env {
    pub hub: Hub,
    /// Secret for 0.3 admin messages.
    pub admin_secret: String,
    /// Backlog chunks of one 0.4 pull sent ahead of the client's `Ack`s.
    pub ack_window: usize,
    /// Open 0.4 pull streams per socket; one more is refused.
    pub max_pull_streams: usize,
    /// Bytes of one 0.4 HTTP pull answer; the rest waits for the next poll.
    pub max_http_pull_bytes: usize,
    /// TEST ONLY: pushes to one store panic ([`TestPanic`]); `None` in service.
    pub test_panic: Option<TestPanic>,
    /// Events in one push; a larger push is refused (`MAX_PUSH_EVENTS`).
    pub max_push_events: usize,
    /// Bytes of one push's message; a larger push is refused (`MAX_PUSH_BYTES`).
    pub max_push_bytes: usize,
    /// Pushes per second per connection; faster ones wait (`0`: no limit).
    pub pushes_per_second: u32,
}

impl Env {
    /// Panics if the test-only hook is armed for `store` at `at`.
    pub(crate) fn test_panic(&self, store: &str, at: PanicPoint) {
        if let Some(t) = &self.test_panic {
            if t.store == store && t.at == at && !t.fired.swap(true, Ordering::SeqCst) {
                panic!("test-only panic ({at:?}) on a push to the armed store");
            }
        }
    }
}

/// TEST ONLY, for the tests of a handler's panic (`tests/handler_panic.rs`):
/// the first push to `store` panics in its session at `at` (once: a retry
/// is served, so a test can show it is acknowledged). Armed only by
/// `LSS_TEST_PANIC_ON_STORE=<store id>` (and `LSS_TEST_PANIC_AT=before-append`
/// or `after-append`, both required, so no stray variable arms it), read
/// once at start; the server then warns in its log that it is armed.
#[derive(Debug)]
pub struct TestPanic {
    pub store: String,
    pub at: PanicPoint,
    fired: AtomicBool,
}

/// Where a push panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PanicPoint {
    /// Before the store is asked: nothing is stored.
    BeforeAppend,
    /// After the append, before the pusher's ack is queued (the broadcast to
    /// the other sockets still goes out): stored, not acknowledged.
    AfterAppend,
}

impl TestPanic {
    /// From the two variables; `None` unless both are set and valid.
    pub fn from_vars(store: Option<String>, at: Option<String>) -> Option<TestPanic> {
        let at = match at?.as_str() {
            "before-append" => PanicPoint::BeforeAppend,
            "after-append" => PanicPoint::AfterAppend,
            _ => return None,
        };
        Some(TestPanic {
            store: store?,
            at,
            fired: AtomicBool::new(false),
        })
    }
}

/// Why a push is refused before the store sees it (over `MAX_PUSH_EVENTS` or
/// `MAX_PUSH_BYTES`): the text of the protocol's push error, logged and
/// counted. `None`: the push may go on. `bytes` is its message's length.
pub(crate) fn push_too_large(
    env: &Env,
    proto: Proto,
    events: usize,
    bytes: usize,
    label: &str,
) -> Option<String> {
    let why = if events > env.max_push_events {
        format!(
            "push too large: {events} events (at most {}, MAX_PUSH_EVENTS)",
            env.max_push_events
        )
    } else if bytes > env.max_push_bytes {
        format!(
            "push too large: {bytes} bytes (at most {}, MAX_PUSH_BYTES)",
            env.max_push_bytes
        )
    } else {
        return None;
    };
    log::warn!("refused push {label} reason={}", logfmt::value(&why));
    env.hub
        .metrics()
        .push_rejected(proto, PushRejected::TooLarge);
    Some(why)
}

/// A connection's push rate (`PUSHES_PER_SECOND`): a token bucket holding one
/// second's worth. An early push waits rather than being refused, so a
/// client that pushes too fast is slowed (its socket's receive buffer fills
/// and TCP holds it back) and loses nothing.
pub struct Pace {
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl Pace {
    /// `0`: no limit.
    pub fn new(per_second: u32) -> Pace {
        Pace {
            per_second: f64::from(per_second),
            tokens: f64::from(per_second),
            last: Instant::now(),
        }
    }

    /// How long a push arriving at `now` must wait; takes its token.
    pub fn delay(&mut self, now: Instant) -> Duration {
        if self.per_second <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.per_second) - 1.0;
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        // In debt: due when the bucket has refilled to zero; that token is
        // spent then, so the next one counts from there.
        let due = self.last + Duration::from_secs_f64(-self.tokens / self.per_second);
        self.last = due;
        self.tokens = 0.0;
        due.saturating_duration_since(now)
    }

    /// Waits (on this connection's reader thread) until a push is due.
    pub fn wait(&mut self) {
        let wait = self.delay(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::Env;
    use crate::sync::hub::Hub;
    use crate::sync::testing::MemStorage;
    use crate::sync::Limits;

    pub const ADMIN: &str = "admin";

    /// An environment over `storage` with the default limits.
    pub fn env(storage: MemStorage) -> Arc<Env> {
        env_with(Arc::new(storage), Limits::default(), 16)
    }

    pub fn env_with(storage: Arc<MemStorage>, limits: Limits, ack_window: usize) -> Arc<Env> {
        Arc::new(Env {
            hub: Hub::new(storage, limits),
            admin_secret: ADMIN.into(),
            ack_window,
            max_pull_streams: 4,
            test_panic: None,
            max_http_pull_bytes: 16 << 20,
            max_push_events: 1000,
            max_push_bytes: 16 << 20,
            pushes_per_second: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Pace;

    #[test]
    fn the_pace_lets_a_second_s_worth_through_then_spaces_pushes() {
        let t0 = Instant::now();
        let mut pace = Pace::new(10);
        for _ in 0..10 {
            assert_eq!(pace.delay(t0), Duration::ZERO);
        }
        // The 11th is due 100 ms later, the 12th 100 ms after that.
        let d = pace.delay(t0);
        assert!((d.as_secs_f64() - 0.1).abs() < 1e-6, "{d:?}");
        let d = pace.delay(t0);
        assert!((d.as_secs_f64() - 0.2).abs() < 1e-6, "{d:?}");
        // After a quiet second the bucket is full again, no fuller.
        let later = t0 + Duration::from_secs(5);
        for _ in 0..10 {
            assert_eq!(pace.delay(later), Duration::ZERO);
        }
        assert!(pace.delay(later) > Duration::ZERO);
        // 0 is no limit.
        let mut off = Pace::new(0);
        for _ in 0..10_000 {
            assert_eq!(off.delay(t0), Duration::ZERO);
        }
    }
}
