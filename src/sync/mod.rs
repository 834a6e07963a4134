//! The sync core shared by both protocol generations: the event model, the
//! per-store push rule, pull paging, and the per-socket subscription state
//! that keeps every stream strictly increasing.

pub mod event;
pub mod hub;
pub mod outbox;
pub mod pull;
#[cfg(test)]
pub(crate) mod testing;
