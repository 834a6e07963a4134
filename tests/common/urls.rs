//! The sync request paths the real clients build (0.3 `/websocket?…`, 0.4
//! `/?…&transport=…`), with their exact encodings.

use super::server::TOKEN;

/// `payload` query value for `{"authToken": token}`, double-encoded as the clients do.
pub fn payload_param(token: &str) -> String {
    let json = serde_json::json!({ "authToken": token }).to_string();
    form_encode(&uri_component(&json))
}

/// JavaScript's `encodeURIComponent`.
pub fn uri_component(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `URLSearchParams` value encoding.
pub fn form_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"-_.*".contains(&b) => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The query a 0.3 client sends for `store` with `token`.
pub fn v03_path(store: &str, token: &str) -> String {
    format!(
        "/websocket?storeId={}&payload={}",
        form_encode(store),
        payload_param(token)
    )
}

/// The query a 0.4 client sends (`transport` is `ws` or `http`).
pub fn v04_path(store: &str, token: &str, transport: &str) -> String {
    format!(
        "/?storeId={}&payload={}&transport={transport}",
        form_encode(store),
        payload_param(token)
    )
}
