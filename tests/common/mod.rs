//! Shared helpers for the integration tests, one concern a module:
//!
//! - [`db`]: a fresh PostgreSQL database per test, and queries on it;
//! - [`fs`]: a temporary directory per test (SQLite), and mounts (a full disk, a read-only file);
//! - [`server`]: the server as a child process or in this process, and a watchdog;
//! - [`urls`]: the sync request paths the clients build;
//! - [`ws`]: WebSocket clients, tidy and raw;
//! - [`http`]: a one-request HTTP client;
//! - [`frames`]: events and the requests and answers of both protocols.
//!
//! Everything is re-exported, so a test says `use common::*;`.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod frames;
pub mod fs;
pub mod http;
pub mod server;
pub mod urls;
pub mod ws;

pub use db::*;
pub use frames::*;
pub use fs::*;
pub use http::*;
pub use server::*;
pub use urls::*;
pub use ws::*;
