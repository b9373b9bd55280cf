//! `weir serve` as a process: SIGTERM drains and exits 0, as Ctrl-C does.

#![cfg(all(unix, not(madsim)))]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};

/// Kills the server if the test fails before it exits.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let port = free_port();
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["serve", "--port", &port.to_string()])
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weir"),
    );
    let mut log = BufReader::new(server.0.stderr.take().unwrap());
    let mut lines = Vec::new();
    let mut read_until = |needle: &str| loop {
        let mut line = String::new();
        assert!(log.read_line(&mut line).unwrap() > 0, "weir exited early; log: {lines:?}");
        lines.push(line.clone());
        if line.contains(needle) {
            return;
        }
    };
    read_until("Server is ready");

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client.write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n").unwrap();
    let mut seen = Vec::new();
    while !seen.ends_with(b"PONG\r\n") {
        let mut b = [0u8; 256];
        let n = client.read(&mut b).unwrap();
        assert!(n > 0, "closed before PONG");
        seen.extend_from_slice(&b[..n]);
    }

    let status = Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().expect("run kill");
    assert!(status.success());
    read_until("SIGTERM: shutting down");
    // The server drains and closes the connection, then exits cleanly.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"");
    let exit = server.0.wait().unwrap();
    assert!(exit.success(), "weir exited with {exit}");
}
