//! The systemd notification protocol, for a `Type=notify` unit (`shard install` writes one):
//! `READY=1` once the server accepts (with `MAINPID` when an upgrade made this process the
//! service's main one), `STOPPING=1` when it starts to drain, and `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` while the runtime turns. Without `NOTIFY_SOCKET` every call does nothing.
//! A datagram to the socket path (or an abstract name, `@…`) per message, sent without
//! blocking; failures (a manager whose queue is full included) are logged at debug level and
//! never stop shard.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Sends `message` (`KEY=value` lines) to the service manager, if there is one.
pub fn notify(message: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send(&socket, message) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

fn send(socket: &std::ffi::OsStr, message: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let address = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)?
        }
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    // Never blocks a runtime thread: a manager that does not read loses a ping, not shard.
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.send_to_addr(message.as_bytes(), &address)?;
    Ok(())
}

/// The watchdog interval the manager asked for (`WATCHDOG_USEC`), unless it is meant for
/// another process (`WATCHDOG_PID`).
fn watchdog_interval() -> Option<Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.trim() != std::process::id().to_string()
    {
        return None;
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog every half interval until `stop`. A stuck runtime stops the pings, and
/// the manager restarts shard.
pub async fn watchdog(stop: CancellationToken) {
    let Some(interval) = watchdog_interval() else {
        return;
    };
    let mut ticker = tokio::time::interval(interval / 2);
    loop {
        tokio::select! {
            _ = ticker.tick() => notify("WATCHDOG=1"),
            _ = stop.cancelled() => return,
        }
    }
}
