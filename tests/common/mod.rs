//! Shared helpers for the integration tests, one concern a module:
//!
//! - [`db`]: a fresh PostgreSQL database per test, and queries on it;
//! - [`fs`]: a temporary directory per test (SQLite), and mounts (a full disk, a read-only file);
//! - [`server`]: the server as a child process or in this process, and a watchdog;
//! - [`urls`]: the sync request paths the clients build;
//! - [`ws`]: WebSocket clients, tidy and raw;
//! - [`http`]: a one-request HTTP client;
//! - [`client_addr`]: sockets from 127.0.0.2 and the like (per-address limits);
//! - [`frames`]: events and the requests and answers of both protocols;
//! - [`proxy`]: nginx and Caddy with the committed configurations;
//! - [`pg_cluster`]: a throwaway PostgreSQL cluster to restart at will;
//! - [`node`]: the real LiveStore clients in Node (`use common::node::*;`,
//!   not re-exported: its names are for the tests that run them).
//!
//! Everything else is re-exported, so a test says `use common::*;`.
#![allow(dead_code, unused_imports)]

pub mod client_addr;
pub mod db;
pub mod frames;
pub mod fs;
pub mod http;
pub mod node;
pub mod pg_cluster;
pub mod proxy;
pub mod server;
pub mod urls;
pub mod ws;

pub use client_addr::*;
pub use db::*;
pub use frames::*;
pub use fs::*;
pub use http::*;
pub use pg_cluster::*;
pub use proxy::*;
pub use server::*;
pub use urls::*;
pub use ws::*;
