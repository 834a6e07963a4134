//! What the 0.4 WebSocket and HTTP sessions share: payload checks and the
//! mapping of core errors to the client's typed errors.

use crate::logfmt;
use crate::metrics::Metrics;
use crate::model::ChainError;
use crate::protocol::v04::{self, SyncError};
use crate::sync::pull::PullRefused;
use crate::sync::store::PushError;

/// The typed error a refused push becomes (counted by `super::push_counted`).
pub fn push_error(e: PushError, label: &str) -> SyncError {
    match e {
        PushError::Chain(ChainError::WrongParent { head, parent }) => SyncError::ServerAhead {
            minimum_expected: head,
            provided: parent,
        },
        PushError::Chain(e @ ChainError::Broken { .. }) => SyncError::Unknown {
            message: e.to_string(),
        },
        PushError::BackendIdMismatch { expected, received } => {
            SyncError::BackendIdMismatch { expected, received }
        }
        PushError::Storage(e) => {
            log::error!(
                "push failed {label} reason={}",
                logfmt::value(&e.to_string())
            );
            SyncError::Unknown {
                message: e.to_string(),
            }
        }
    }
}

/// The typed error a refused pull becomes.
pub fn pull_refused(m: &Metrics, e: PullRefused, label: &str) -> SyncError {
    match e {
        PullRefused::BackendIdMismatch { expected, received } => {
            SyncError::BackendIdMismatch { expected, received }
        }
        PullRefused::Storage(e) => pull_failed(m, &e, label),
    }
}

/// A pull whose storage failed: logged, and kept in the recent errors.
pub fn pull_failed(m: &Metrics, e: &crate::storage::StorageError, label: &str) -> SyncError {
    log::error!(
        "pull failed {label} reason={}",
        logfmt::value(&e.to_string())
    );
    m.error(&format!("pull failed: {e}"), label);
    SyncError::Unknown {
        message: e.to_string(),
    }
}

/// Decodes a payload and checks that it names the store of the URL (the
/// connection was authorised for that store only). The error is the text
/// of the request's `Die` exit.
pub fn payload_for_store<T: serde::de::DeserializeOwned>(
    payload: Option<&serde_json::value::RawValue>,
    url_store_id: &str,
    store_id_of: impl Fn(&T) -> &str,
) -> Result<T, String> {
    let p: T = v04::decode_payload(payload)?;
    if store_id_of(&p) != url_store_id {
        return Err(format!(
            "storeId `{}` in the request does not match the URL's `{url_store_id}`",
            store_id_of(&p)
        ));
    }
    Ok(p)
}
