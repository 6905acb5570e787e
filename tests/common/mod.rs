//! Helpers shared by the integration tests that drive the `vitrina` binary.

use std::process::{Command, Output};

/// Runs the binary under test.
#[allow(dead_code)]
pub fn vitrina(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vitrina"))
        .args(args)
        .output()
        .unwrap()
}

/// The hits of a successful `search --json`, failing with its stderr otherwise.
#[allow(dead_code)]
pub fn json_hits(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A minimal HTTP/1.1 exchange over loopback; returns (status, body).
#[allow(dead_code)]
pub fn http(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_with(port, method, target, &[], body)
}

/// [`http`] with extra header lines (`"Authorization: Bearer x"`).
#[allow(dead_code)]
pub fn http_with(
    port: u16,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let (status, _, body) = exchange(port, method, target, headers, body);
    (status, body)
}

/// One request; returns (status, the response head in lower case, body).
#[allow(dead_code)]
pub fn exchange(
    port: u16,
    method: &str,
    target: &str,
    headers: &[&str],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let status_line = String::from_utf8_lossy(&response[..split]).to_string();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = response[split + 4..].to_vec();
    if status_line
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, status_line.to_ascii_lowercase(), body)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

/// A `vitrina serve` child on a free loopback port, killed when dropped.
#[allow(dead_code)]
pub struct Server(std::process::Child);

#[allow(dead_code)]
impl Server {
    /// Starts `vitrina serve ARGS --addr 127.0.0.1:PORT` and waits until it listens.
    pub fn start(args: &[&str]) -> (Server, u16) {
        Self::start_with(args, &[], std::process::Stdio::null())
    }

    /// As [`Server::start`], with environment variables `envs` and the server's stderr
    /// (its logs) going to `stderr`.
    pub fn start_with(
        args: &[&str],
        envs: &[(&str, &str)],
        stderr: std::process::Stdio,
    ) -> (Server, u16) {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut all = vec!["serve", "--addr", &addr];
        all.extend_from_slice(args);
        let server = Server(
            Command::new(env!("CARGO_BIN_EXE_vitrina"))
                .args(&all)
                .envs(envs.iter().copied())
                .stderr(stderr)
                .spawn()
                .unwrap(),
        );
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed().as_secs() < 60, "server did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        (server, port)
    }
}

#[allow(dead_code)]
impl Server {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits up to `limit` for the server to exit by itself; its exit status.
    pub fn wait_exit(&mut self, limit: std::time::Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.0.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
