//! Wire codecs, one per protocol generation, plus the query string both
//! share and the WebSocket frames the server writes. Pure functions: frames
//! in, decoded requests out; values in, frames out. Unit-tested on frames
//! captured between the real clients and the reference server
//! (`tests/fixtures/frames/`).
//!
//! Uses only the leaf model (`crate::model`) and `crate::timefmt`.

pub mod json;
pub mod query;
pub mod v03;
pub mod v04;
pub mod ws_frame;

#[cfg(test)]
pub(crate) mod fixtures;
