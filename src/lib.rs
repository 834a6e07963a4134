//! livestore-sync: a self-hosted sync server for LiveStore apps.
//!
//! Unmodified LiveStore clients sync through it with the `@livestore/sync-cf`
//! protocols: 0.3 (`makeCfSync`, WebSocket) and 0.4 (`makeWsSync` over
//! WebSocket, `makeHttpSync` over HTTP). The event log lives in PostgreSQL.
//!
//! Where things are, from the wire inwards:
//!
//! | module | what it does | does I/O? |
//! |---|---|---|
//! | [`server`] | accept loop, HTTP/1.1, WebSocket reader/writer threads, shutdown | sockets |
//! | [`protocol`] | wire codecs: query string, 0.3 messages, 0.4 Effect-RPC envelopes, server WebSocket frames | no (text in, values out) |
//! | [`session`] | one connection's glue: decoded request → store → encoded answers | through `Outbox` and `Storage` |
//! | [`sync`] | the core: events, per-store push/pull rules, subscriptions, outboxes | through `Storage`; an outbox writes small replies to its socket and cuts it |
//! | [`storage`] | the `Storage` interface and its PostgreSQL implementation | database |
//! | [`config`] | every setting and limit, with defaults | no |
//!
//! The design and its reasons are in `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

pub mod config;
pub mod logger;
pub mod protocol;
pub mod server;
pub mod session;
pub mod storage;
pub mod sync;
pub mod timefmt;
