//! Start-up failures of the listener as an operator should read them: the
//! address, the cause, and what to do, pointing at the README section that
//! explains it. (The event log's own failures say the same from
//! `storage`.)

use crate::storage::io_cause;

/// Why `addr` (`host:port`) could not be listened on.
pub fn cannot_listen(addr: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    let hint = match e.kind() {
        AddrInUse => {
            "Another process listens there (`ss -ltnp` shows which): stop it, or set another \
             PORT (see README, \"Configuration\")"
        }
        PermissionDenied => {
            "Ports below 1024 need root or CAP_NET_BIND_SERVICE: use a port of 1024 or more \
             behind a proxy, or let systemd open the port (see README, \"Running under systemd\", \
             socket activation)"
        }
        AddrNotAvailable => {
            "HOST must be an address of this machine, or 0.0.0.0 for all \
             (see README, \"Configuration\")"
        }
        _ => "Check HOST and PORT (see README, \"Configuration\")",
    };
    format!("cannot listen on {addr}: {}. {hint}", io_cause(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_says_where_why_and_what_to_do() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = held.local_addr().unwrap().to_string();
        let e = std::net::TcpListener::bind(&addr).unwrap_err();
        let text = cannot_listen(&addr, &e);
        assert!(
            text.starts_with(&format!(
                "cannot listen on {addr}: address already in use. "
            )),
            "{text}"
        );
        assert!(text.contains("README, \"Configuration\""), "{text}");
    }
}
