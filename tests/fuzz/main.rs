//! Fuzzing on stable Rust (issue 13): property tests with generated,
//! mutated and structure-aware inputs, run by `cargo test` (a short run)
//! and at length with `FUZZ_CASES` (docs/fuzzing.md). The push/pull rules
//! against a model are in the library's own tests (`sync::fuzz`), where
//! the in-memory storage lives.
//!
//! Each target prints one line when it passes: its name, how many inputs
//! it ran, "0 panics" and the time (`-- --nocapture` shows them).

mod codecs;
mod http;
mod query;
mod support;
