//! Socket activation (sd_listen_fds(3)): systemd (or
//! `systemd-socket-activate`) opens the listening socket and passes it as
//! fd 3, with `LISTEN_FDS=1` and `LISTEN_PID` set to our pid.
//!
//! Turning fd 3 into a `TcpListener` takes `FromRawFd`, which is `unsafe`,
//! and this crate forbids unsafe code. The `listenfd` crate (mitsuhiko's,
//! small, the one `systemfd` uses) does it behind a safe call after
//! checking that the descriptor is a stream socket of the right family and
//! marking it close-on-exec. It also removes `LISTEN_FDS`/`LISTEN_PID`
//! from the environment, which is only sound while no other thread runs:
//! [`take_listener`] is called first thing at start-up.

use std::net::TcpListener;

/// Why a passed socket cannot be served (not a TCP stream socket, or
/// `LISTEN_FDS` garbled). The caller logs it and exits 1: the `.socket`
/// unit needs fixing, and serving anything else would surprise.
#[derive(Debug, PartialEq, Eq)]
pub struct ActivationError(pub String);

impl std::fmt::Display for ActivationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `LISTEN_FDS` is meant for us: `LISTEN_PID` must name this
/// process (a child started by us would inherit the variables, and
/// sd_listen_fds(3) ignores them without `LISTEN_PID`). `Ok(None)`: no
/// sockets passed; `Ok(Some(n))`: `n` sockets from fd 3 on.
pub fn passed_fds(
    listen_fds: Option<&str>,
    listen_pid: Option<&str>,
    own_pid: u32,
) -> Result<Option<usize>, ActivationError> {
    let Some(fds) = listen_fds else {
        return Ok(None);
    };
    if listen_pid.and_then(|p| p.trim().parse::<u32>().ok()) != Some(own_pid) {
        return Ok(None);
    }
    match fds.trim().parse::<usize>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => Err(ActivationError(format!(
            "LISTEN_FDS={fds} is not a number of sockets"
        ))),
    }
}

/// The listening socket systemd passed, if any. Call before any other
/// thread starts (see the module's doc).
pub fn take_listener() -> Result<Option<TcpListener>, ActivationError> {
    let n = passed_fds(
        std::env::var("LISTEN_FDS").ok().as_deref(),
        std::env::var("LISTEN_PID").ok().as_deref(),
        std::process::id(),
    )?;
    let Some(n) = n else {
        return Ok(None);
    };
    if n > 1 {
        log::warn!(
            "systemd passed {n} sockets; serving the first (fd 3) only: give the .socket unit one ListenStream="
        );
    }
    let mut fds = listenfd::ListenFd::from_env();
    let listener = fds
        .take_tcp_listener(0)
        .map_err(|e| {
            ActivationError(format!(
                "the socket systemd passed (fd 3) cannot be served: {e}. The .socket unit must \
                 have ListenStream= a TCP port or address (see README, \"Running under systemd\")"
            ))
        })?
        .ok_or_else(|| ActivationError("LISTEN_FDS is set but fd 3 was not passed".into()))?;
    // accept() must block: the accept loop waits in it.
    listener
        .set_nonblocking(false)
        .map_err(|e| ActivationError(format!("the socket systemd passed (fd 3): {e}")))?;
    Ok(Some(listener))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passed_sockets_are_ours_only_with_our_pid() {
        assert_eq!(passed_fds(None, None, 7), Ok(None));
        assert_eq!(passed_fds(Some("1"), Some("7"), 7), Ok(Some(1)));
        assert_eq!(passed_fds(Some("2"), Some("7"), 7), Ok(Some(2)));
        // Inherited from a parent, or LISTEN_PID missing: not for us.
        assert_eq!(passed_fds(Some("1"), Some("8"), 7), Ok(None));
        assert_eq!(passed_fds(Some("1"), None, 7), Ok(None));
        assert_eq!(passed_fds(Some("0"), Some("7"), 7), Ok(None));
        assert!(passed_fds(Some("x"), Some("7"), 7).is_err());
    }
}
