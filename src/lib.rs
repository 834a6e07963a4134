//! livestore-sync: a self-hosted sync server for LiveStore apps.
//!
//! Unmodified LiveStore clients sync through it with the `@livestore/sync-cf`
//! protocols: 0.3 (`makeCfSync`, WebSocket) and 0.4 (`makeWsSync` over
//! WebSocket, `makeHttpSync` over HTTP). The event log lives in an embedded
//! SQLite file (the default) or in PostgreSQL.
//!
//! Where things are, from the wire inwards. Each room uses only rooms below
//! it (checked by `tests/architecture.rs`):
//!
//! | module | what it does | may use | does I/O? |
//! |---|---|---|---|
//! | [`service`] | start-up in order, systemd notify and socket activation, start-up errors with hints | server, storage, config, logger, auth | sockets, environment |
//! | [`server`] | accept loop, HTTP/1.1, WebSocket reader/writer threads, the socket queue, shutdown | everything below | sockets |
//! | [`session`] | one connection's protocol state: decoded request → store → encoded answers | protocol, sync, storage, model, metrics | no (through a `Sink`) |
//! | [`protocol`] | wire codecs: query string, 0.3 messages, 0.4 Effect-RPC envelopes, JSON writers, server WebSocket frames | model | no |
//! | [`auth`] | who may use which store: static tokens, signed tokens (JWT) and their claims | config, protocol | reads the key files once at start |
//! | [`sync`] | the core: stores, push/pull rules, subscriptions, the `Sink` a socket offers | storage, model, metrics | through `Storage` |
//! | [`storage`] | the `Storage` interface, its SQLite and PostgreSQL implementations | model | database |
//! | [`archive`] | export files: LiveStore's `sync export` document and our NDJSON, written and read | model, timefmt | through the `Read`/`Write` it is given |
//! | [`model`] | events, store metadata, the chain and page rules | nothing | no |
//! | [`metrics`] | what every room counts, rendered for `/metrics` and `/status` | nothing | no (`/proc/self` at a scrape) |
//! | [`config`], [`logger`], [`logfmt`], [`timefmt`] | settings and limits, the log line format (plain or journald), `key=value` field values, timestamps | nothing (`logger`: `timefmt`) | no |
//!
//! The design and its reasons are in `docs/ARCHITECTURE.md`.
#![forbid(unsafe_code)]

pub mod archive;
pub mod auth;
pub mod cli;
pub mod config;
pub mod logfmt;
pub mod logger;
pub mod metrics;
pub mod model;
pub mod protocol;
pub mod server;
pub mod service;
pub mod session;
pub mod storage;
pub mod sync;
pub mod timefmt;
