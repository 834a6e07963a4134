//! livestore-sync: a self-hosted sync server for LiveStore apps.
#![forbid(unsafe_code)]
