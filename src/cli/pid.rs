//! Is a daemon running on this workspace? (`.daemon/pid` + a live process,
//! and `/health` on the configured port.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::config::Config;

/// The pid in `.daemon/pid` if that process is alive.
pub fn running_pid(config: &Config) -> Option<i32> {
    let text = std::fs::read_to_string(config.daemon_dir().join("pid")).ok()?;
    let pid: i32 = text.trim().parse().ok()?;
    // A stale file naming this very process (a container's PID 1 after an
    // unclean stop) is not a running daemon.
    if pid as u32 == std::process::id() {
        return None;
    }
    // SAFETY: kill(pid, 0) only checks that the process exists.
    let alive = pid > 0 && unsafe { libc::kill(pid, 0) } == 0;
    alive.then_some(pid)
}

/// The body of `GET /health`, if something answers it.
pub fn health(host: &str, port: u16) -> Option<String> {
    let addr = format!("{host}:{port}");
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&addr)
        .ok()?
        .next()?;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| body.trim().to_string())
}
