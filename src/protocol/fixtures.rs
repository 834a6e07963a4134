//! Captured frames (real npm clients against the reference server), kept in
//! `tests/fixtures/frames/` and used by the codec tests.

/// The `data` of every text frame in `file` going in direction `dir` (`c2s` or `s2c`).
pub fn frames(file: &str, dir: &str) -> Vec<String> {
    let path = format!(
        "{}/tests/fixtures/frames/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("fixture line is JSON"))
        .filter(|v| v["dir"] == dir && v["type"] == "text")
        .map(|v| v["data"].as_str().expect("text frame data").to_string())
        .collect()
}

/// The events of a captured page (`batch` of a 0.3 `PullRes` or a 0.4
/// `PullResponse`), with the `createdAt` the reference server gave them.
pub fn stored_events(batch: &serde_json::Value) -> Vec<crate::model::StoredEvent> {
    batch
        .as_array()
        .expect("batch is an array")
        .iter()
        .map(|item| crate::model::StoredEvent {
            event: serde_json::from_str(&item["eventEncoded"].to_string()).expect("event"),
            created_at: crate::timefmt::parse_iso8601(
                item["metadata"]["value"]["createdAt"]
                    .as_str()
                    .expect("createdAt"),
            )
            .expect("ISO timestamp"),
        })
        .collect()
}
