//! The sync request's query string, shared by both generations:
//! `storeId` (form-urlencoded), `payload` (JSON, `encodeURIComponent`-ed and
//! then form-urlencoded again), and for 0.4 `transport=ws|http`.

use serde_json::Value;

/// Which protocol a request speaks, decided from its path and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// 0.3: a path ending in `/websocket` with no `transport` parameter.
    V03,
    /// 0.4 over WebSocket (`transport=ws`, any path).
    V04Ws,
    /// 0.4 over HTTP POST (`transport=http`, any path).
    V04Http,
}

/// A sync request's parameters after decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncParams {
    pub route: Route,
    pub store_id: String,
    /// The app's `syncPayload`, if it sent one.
    pub payload: Option<Value>,
}

/// Why a sync request is refused before any upgrade. Each becomes a `400`
/// with the `Display` text as a plain-text body (the only text a developer
/// sees: LiveStore logs the body of a failed connection attempt).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamError {
    MissingStoreId,
    RepeatedParam(&'static str),
    BadEncoding(&'static str),
    BadPayloadJson(String),
    UnknownTransport(String),
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamError::MissingStoreId => write!(f, "Invalid search params: storeId is required"),
            ParamError::RepeatedParam(p) => {
                write!(f, "Invalid search params: {p} must be given once")
            }
            ParamError::BadEncoding(p) => write!(
                f,
                "Invalid search params: {p} is not valid percent-encoded UTF-8"
            ),
            ParamError::BadPayloadJson(e) => {
                write!(f, "Invalid search params: payload is not JSON ({e})")
            }
            ParamError::UnknownTransport(t) => write!(
                f,
                "Invalid search params: transport must be ws or http, got `{t}`"
            ),
        }
    }
}

/// Routes a request: `None` when it is not a sync request at all.
/// `transport` wins over the path (a 0.4 base URL may end in `/websocket`).
pub fn route(path: &str, query: &str) -> Option<Route> {
    for (k, v) in form_pairs(query) {
        if k == "transport" {
            return Some(match v.as_slice() {
                b"http" => Route::V04Http,
                _ => Route::V04Ws, // validated in `parse`, which rejects other values
            });
        }
    }
    path.ends_with("/websocket").then_some(Route::V03)
}

/// Decodes the query of a request that `route` classified.
pub fn parse(route: Route, query: &str) -> Result<SyncParams, ParamError> {
    let mut store_id = None;
    let mut payload_raw = None;
    let mut transport = None;
    for (k, v) in form_pairs(query) {
        let slot = match k.as_str() {
            "storeId" => &mut store_id,
            "payload" => &mut payload_raw,
            "transport" => &mut transport,
            _ => continue,
        };
        if slot.is_some() {
            return Err(ParamError::RepeatedParam(match k.as_str() {
                "storeId" => "storeId",
                "payload" => "payload",
                _ => "transport",
            }));
        }
        *slot = Some(v);
    }
    if let Some(t) = transport {
        if t != b"ws" && t != b"http" {
            return Err(ParamError::UnknownTransport(
                String::from_utf8_lossy(&t).into_owned(),
            ));
        }
    }
    let store_id = store_id.ok_or(ParamError::MissingStoreId)?;
    let store_id = String::from_utf8(store_id).map_err(|_| ParamError::BadEncoding("storeId"))?;
    let payload = match payload_raw {
        None => None,
        Some(raw) => {
            // Second layer: `encodeURIComponent`, so `+` stays `+`.
            let text = String::from_utf8(raw).map_err(|_| ParamError::BadEncoding("payload"))?;
            let json = percent_decode(&text, false).ok_or(ParamError::BadEncoding("payload"))?;
            let json = String::from_utf8(json).map_err(|_| ParamError::BadEncoding("payload"))?;
            Some(
                serde_json::from_str(&json)
                    .map_err(|e| ParamError::BadPayloadJson(e.to_string()))?,
            )
        }
    };
    Ok(SyncParams {
        route,
        store_id,
        payload,
    })
}

impl SyncParams {
    /// `payload.authToken`, when it is a string (`auth::Auth` judges it).
    pub fn auth_token(&self) -> Option<&str> {
        self.payload
            .as_ref()
            .and_then(|p| p.get("authToken"))
            .and_then(Value::as_str)
    }
}

/// Compares two secrets in time that depends only on their lengths.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    // Walk the whole expected secret whatever the input, so the time taken
    // does not reveal how long a matching prefix is.
    let mut diff = 0u8;
    for (i, expected) in b.iter().enumerate() {
        diff |= a.get(i).copied().unwrap_or(0) ^ expected;
    }
    diff == 0 && a.len() == b.len()
}

/// `application/x-www-form-urlencoded` pairs; values stay bytes (decoded
/// `%XX`, `+` as space). Undecodable pairs are kept raw so a bad encoding is
/// reported by the caller, not silently dropped.
fn form_pairs(query: &str) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(k, true)
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_else(|| k.to_string());
        let value = percent_decode(v, true).unwrap_or_else(|| vec![0xff]);
        (key, value)
    })
}

/// Percent-decodes; `plus_is_space` for the form layer. `None` on a bad `%XX`.
pub fn percent_decode(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn captured_v03_query_decodes() {
        // From frames-v03.log.
        let q = "storeId=ref03-1795607513-4911&payload=%257B%2522authToken%2522%253A%2522insecure-token-change-me%2522%257D";
        assert_eq!(route("/websocket", q), Some(Route::V03));
        let p = parse(Route::V03, q).unwrap();
        assert_eq!(p.store_id, "ref03-1795607513-4911");
        assert_eq!(
            p.payload,
            Some(json!({"authToken": "insecure-token-change-me"}))
        );
        assert_eq!(p.auth_token(), Some("insecure-token-change-me"));
    }

    #[test]
    fn spec_examples_decode() {
        // sync-cf-0.4.md §1.2: storeId "store 1/ä", payload {"authToken":"a&b=c d%"}.
        let q = "storeId=store+1%2F%C3%A4&payload=%257B%2522authToken%2522%253A%2522a%2526b%253Dc%2520d%2525%2522%257D&transport=ws";
        assert_eq!(route("/sync", q), Some(Route::V04Ws));
        let p = parse(Route::V04Ws, q).unwrap();
        assert_eq!(p.store_id, "store 1/ä");
        assert_eq!(p.payload, Some(json!({"authToken": "a&b=c d%"})));
        // A `+` inside the payload's JSON survives the second layer.
        let q = "storeId=s&payload=%2522a%252Bb%2522";
        assert_eq!(parse(Route::V03, q).unwrap().payload, Some(json!("a+b")));
        assert_eq!(
            parse(Route::V03, "storeId=s&payload=null").unwrap().payload,
            Some(Value::Null)
        );
    }

    #[test]
    fn routing() {
        assert_eq!(route("/websocket", "storeId=a"), Some(Route::V03));
        assert_eq!(route("/sync/websocket", "storeId=a"), Some(Route::V03));
        assert_eq!(route("//websocket", ""), Some(Route::V03));
        assert_eq!(
            route("/websocket", "storeId=a&transport=http"),
            Some(Route::V04Http)
        );
        assert_eq!(route("/", "storeId=a&transport=ws"), Some(Route::V04Ws));
        assert_eq!(route("/", "storeId=a"), None);
        assert_eq!(route("/health", ""), None);
    }

    #[test]
    fn bad_params_are_refused() {
        assert_eq!(
            parse(Route::V03, "payload=null"),
            Err(ParamError::MissingStoreId)
        );
        assert_eq!(
            parse(Route::V03, "storeId=a&storeId=b"),
            Err(ParamError::RepeatedParam("storeId"))
        );
        assert!(matches!(
            parse(Route::V03, "storeId=a&payload="),
            Err(ParamError::BadPayloadJson(_))
        ));
        assert_eq!(
            parse(Route::V03, "storeId=a&payload=%25ZZ"),
            Err(ParamError::BadEncoding("payload"))
        );
        assert_eq!(
            parse(Route::V03, "storeId=%FF"),
            Err(ParamError::BadEncoding("storeId"))
        );
        assert!(matches!(
            parse(Route::V04Ws, "storeId=a&transport=do-rpc"),
            Err(ParamError::UnknownTransport(_))
        ));
        let no_payload = parse(Route::V03, "storeId=a").unwrap();
        assert_eq!(no_payload.auth_token(), None);
        let number = parse(
            Route::V03,
            "storeId=a&payload=%257B%2522authToken%2522%253A1%257D",
        )
        .unwrap();
        assert_eq!(number.auth_token(), None);
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secreT", b"secret"));
        assert!(!ct_eq(b"secret1", b"secret"));
        assert!(!ct_eq(b"", b"secret"));
        assert!(ct_eq(b"", b""));
    }
}
