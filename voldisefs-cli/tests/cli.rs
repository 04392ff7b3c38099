//! End-to-end tests of the `voldisefs` binary against real nodes.
//!
//! Nodes run in this test process through the `voldisefs-node` library on `127.0.0.1:0`; the
//! binary is spawned as a child process pointed at their HTTP addresses, exactly as a user
//! would run it. Every wait has a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use voldisefs_node::{Node, NodeConfig};

/// How long one CLI invocation may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a network may take to converge.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);
/// The password the tests use.
const PASSWORD: &str = "correct horse battery staple";

/// Nodes running in this process, shut down when dropped.
struct Network {
    rt: tokio::runtime::Runtime,
    nodes: Vec<Node>,
}

impl Network {
    /// Starts `n` nodes on loopback; all but the first join through the first. Returns once
    /// every node sees every other node alive.
    fn start(n: usize) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let nodes = rt.block_on(async {
            let mut nodes: Vec<Node> = Vec::new();
            for _ in 0..n {
                let config = NodeConfig {
                    bootstrap: nodes.first().map(Node::peer_addr).into_iter().collect(),
                    ..NodeConfig::ephemeral()
                };
                nodes.push(Node::start(config).await.unwrap());
            }
            nodes
        });
        let deadline = Instant::now() + CONVERGE_TIMEOUT;
        for node in &nodes {
            loop {
                let alive = node
                    .status()
                    .peers
                    .iter()
                    .filter(|p| p.state == "alive")
                    .count();
                if alive + 1 >= n {
                    break;
                }
                assert!(Instant::now() < deadline, "network did not converge");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Self { rt, nodes }
    }

    /// The HTTP URL of node `i`.
    fn url(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].http_addr().unwrap())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let nodes = std::mem::take(&mut self.nodes);
        self.rt.block_on(async {
            let all = async {
                for node in &nodes {
                    node.shutdown().await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(20), all).await;
        });
    }
}

/// The binary, with a clean environment for the variables it reads.
fn voldisefs() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_voldisefs"));
    cmd.env_remove("VOLDISEFS_NODE")
        .env_remove("VOLDISEFS_PASSWORD")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    cmd
}

/// Runs the command to completion within [`RUN_TIMEOUT`], killing it if it overruns.
fn run(cmd: &mut Command) -> Output {
    run_with(cmd, None)
}

/// [`run`], with `input` (if any) written to the command's standard input from a thread, then
/// closed.
fn run_with(cmd: &mut Command, input: Option<Vec<u8>>) -> Output {
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        std::thread::spawn(move || {
            use std::io::Write as _;
            let _ = stdin.write_all(&input);
        });
    }
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} did not finish within {RUN_TIMEOUT:?}");
        }
    }
}

/// Asserts the exit code, showing stderr when it differs.
fn assert_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// stderr as text.
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Uploads `path` through `node` and returns the file id (the last line of stdout).
fn put(node: &str, path: &Path) -> String {
    let output = run(voldisefs()
        .args(["put", path.to_str().unwrap(), "--node", node])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let id = last_line(&output);
    assert_eq!(id.len(), 64, "not an id: {id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    id
}

/// The last line of the command's stdout (where `put` prints the id).
fn last_line(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().last().unwrap_or_default().to_owned()
}

/// Deterministic test bytes.
fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// A port nothing listens on (bound, then released).
fn dead_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Names in `dir`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn put_then_get_through_another_node() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    // Empty, tiny, and just over one 1 MiB chunk.
    for (i, len) in [0usize, 1, (1 << 20) + 1].into_iter().enumerate() {
        let name = format!("hello wörld {i}.bin");
        let path = src.path().join(&name);
        let bytes = data(len);
        std::fs::write(&path, &bytes).unwrap();
        let id = put(&net.url(0), &path);

        // No -o: the original name, in the current directory; the path is printed.
        let output = run(voldisefs()
            .args(["get", &id, "--node", &net.url(1)])
            .current_dir(dst.path())
            .env("VOLDISEFS_PASSWORD", PASSWORD));
        assert_code(&output, 0);
        let written = dst.path().join(&name);
        assert_eq!(std::fs::read(&written).unwrap(), bytes, "size {len}");
        assert!(String::from_utf8_lossy(&output.stdout).contains(&name));
    }
    // Nothing but the downloaded files: no temporary leftovers.
    assert_eq!(
        entries(dst.path()),
        [
            "hello wörld 0.bin",
            "hello wörld 1.bin",
            "hello wörld 2.bin"
        ]
    );
}

#[test]
fn get_to_stdout_and_password_file() {
    let net = Network::start(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let bytes = data(100_000);
    std::fs::write(&path, &bytes).unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();

    let output = run(voldisefs().args([
        "put",
        path.to_str().unwrap(),
        "--password-file",
        pw.to_str().unwrap(),
        "--node",
        &net.url(0),
    ]));
    assert_code(&output, 0);
    let id = last_line(&output);

    // The environment variable holds the same password (the file's trailing newline is not
    // part of it); the node URL comes from $VOLDISEFS_NODE.
    let output = run(voldisefs()
        .args(["get", &id, "-o", "-"])
        .env("VOLDISEFS_NODE", net.url(1))
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert!(output.stdout == bytes, "stdout differs from the file");
}

#[test]
fn get_refuses_to_overwrite_without_force() {
    let net = Network::start(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.txt");
    std::fs::write(&path, b"new contents").unwrap();
    let id = put(&net.url(0), &path);

    let out_dir = tempfile::tempdir().unwrap();
    let target = out_dir.path().join("existing.txt");
    std::fs::write(&target, b"keep me").unwrap();
    let get = |extra: &[&str]| {
        run(voldisefs()
            .args(["get", &id, "--node", &net.url(0)])
            .args(extra)
            .current_dir(out_dir.path())
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };

    // Explicit -o path.
    let output = get(&["-o", target.to_str().unwrap()]);
    assert_code(&output, 1);
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");

    // Default name taken from the file.
    std::fs::write(out_dir.path().join("report.txt"), b"old report").unwrap();
    let output = get(&[]);
    assert_code(&output, 1);
    assert!(stderr(&output).contains("already exists"));
    assert_eq!(
        std::fs::read(out_dir.path().join("report.txt")).unwrap(),
        b"old report"
    );
    assert_eq!(entries(out_dir.path()), ["existing.txt", "report.txt"]);

    // --force overwrites.
    let output = get(&["-o", target.to_str().unwrap(), "--force"]);
    assert_code(&output, 0);
    assert_eq!(std::fs::read(&target).unwrap(), b"new contents");

    // -o naming a directory puts the original name in it.
    let sub = out_dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let output = get(&["-o", sub.to_str().unwrap()]);
    assert_code(&output, 0);
    assert_eq!(
        std::fs::read(sub.join("report.txt")).unwrap(),
        b"new contents"
    );
}

#[test]
fn wrong_password_unknown_id_and_rm() {
    let net = Network::start(2);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.txt");
    std::fs::write(&path, b"the eagle lands at dawn").unwrap();
    let id = put(&net.url(0), &path);

    let get = |id: &str, password: &str| {
        run(voldisefs()
            .args(["get", id, "--node", &net.url(1)])
            .current_dir(dir.path())
            .env("VOLDISEFS_PASSWORD", password))
    };

    let output = get(&id, "not the password");
    assert_code(&output, 3);
    let message = stderr(&output);
    assert!(message.contains("wrong password"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
    assert!(!message.contains("not the password"));

    let unknown = "ab".repeat(32);
    let output = get(&unknown, PASSWORD);
    assert_code(&output, 4);
    assert!(stderr(&output).contains("not found"), "{}", stderr(&output));

    // rm with the wrong password is refused; with the right one the file is gone.
    let rm = |password: &str| {
        run(voldisefs()
            .args(["rm", &id, "--node", &net.url(0)])
            .env("VOLDISEFS_PASSWORD", password))
    };
    assert_code(&rm("nope"), 3);
    assert_code(&rm(PASSWORD), 0);
    assert_code(&get(&id, PASSWORD), 4);
    // Nothing was ever written by the failed downloads.
    assert_eq!(entries(dir.path()), ["secret.txt"]);
}

#[test]
fn unreachable_node_exits_with_5() {
    let url = format!("http://127.0.0.1:{}", dead_port());
    let output = run(voldisefs().args(["ls", "--node", &url]));
    assert_code(&output, 5);
    assert!(
        stderr(&output).contains("cannot reach node"),
        "{}",
        stderr(&output)
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    std::fs::write(&path, b"a").unwrap();
    let output = run(voldisefs()
        .args(["put", path.to_str().unwrap(), "--node", &url])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 5);
}

#[test]
fn usage_errors_exit_with_2() {
    for args in [
        &["get", "not-an-id"][..],
        &["frobnicate"],
        &["put"],
        &["ls", "--node", "ftp://example"],
        &["node", "start", "--chunk-size", "1000"],
        &["demo", "--nodes", "0"],
    ] {
        let output = run(voldisefs().args(args));
        assert_code(&output, 2);
    }
    assert_code(&run(voldisefs().arg("--help")), 0);
    assert_code(&run(voldisefs().arg("--version")), 0);
}

#[test]
fn no_password_and_no_terminal_is_a_clear_error() {
    // `setsid` runs the binary without a controlling terminal, as in CI or a cron job.
    let mut cmd = Command::new("setsid");
    cmd.arg("-w")
        .arg(env!("CARGO_BIN_EXE_voldisefs"))
        .args(["rm", &"ab".repeat(32), "--node", "http://127.0.0.1:1"])
        .env_remove("VOLDISEFS_PASSWORD")
        .stdin(Stdio::null());
    let output = run(&mut cmd);
    assert_code(&output, 1);
    let message = stderr(&output);
    assert!(message.contains("--password-file FILE"), "{message}");
    assert!(message.contains("VOLDISEFS_PASSWORD"), "{message}");
    assert_eq!(message.trim().lines().count(), 1, "{message}");
}

#[test]
fn missing_input_file_is_one_line() {
    let output = run(voldisefs()
        .args([
            "put",
            "/nonexistent/file.bin",
            "--node",
            "http://127.0.0.1:1",
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 1);
    let message = stderr(&output);
    assert!(
        message.starts_with("error: cannot open /nonexistent/file.bin"),
        "{message}"
    );
    assert_eq!(message.trim().lines().count(), 1);
}

/// Uploads `bytes` through a node's gateway (`POST /api/v1/files`, the password in a header:
/// the node seals it) with a bare HTTP/1.1 request, and returns the id.
fn gateway_put(url: &str, name: &str, bytes: &[u8]) -> String {
    use std::io::{Read as _, Write as _};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /api/v1/files HTTP/1.1\r\nHost: {addr}\r\nx-voldisefs-password: {PASSWORD}\r\n\
         x-voldisefs-filename: {name}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(bytes).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let body = answer.split("\r\n\r\n").nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["id"].as_str().unwrap().to_string()
}

#[test]
fn ls_and_network() {
    let net = Network::start(2);
    // `ls` lists what went through the node's gateway (it sealed those, so it knows them).
    let id = gateway_put(&net.url(0), "listed.txt", &data(5000));

    let output = run(voldisefs().args(["ls", "--json", "--node", &net.url(0)]));
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let files = json["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["id"] == id.as_str() && f["size"] == 5000 && f["name"] == "listed.txt")
    );

    let output = run(voldisefs().args(["ls", "--node", &net.url(0)]));
    assert_code(&output, 0);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&id), "{text}");
    assert!(text.lines().next().unwrap().ends_with("NAME"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&id) && l.ends_with("listed.txt")),
        "{text}"
    );

    let output = run(voldisefs().args(["network", "--json", "--node", &net.url(1)]));
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["node"]["id"], net.nodes[1].id().to_string());
    let peers = json["peers"].as_array().unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p["id"] == net.nodes[0].id().to_string() && p["state"] == "alive")
    );

    let output = run(voldisefs().args(["network", "--node", &net.url(1)]));
    assert_code(&output, 0);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&net.nodes[0].id().to_string()), "{text}");
    assert!(text.contains("alive"), "{text}");
}

/// A `voldisefs node start` child process, killed when dropped.
struct NodeProcess {
    child: std::process::Child,
    /// Its ready lines: `node <id>`, `peer <addr>`, `http http://<addr>`.
    lines: Vec<String>,
}

impl NodeProcess {
    /// Starts a node on OS-assigned loopback ports with `extra` options and waits for its
    /// three ready lines.
    fn start(extra: &[&str]) -> NodeProcess {
        Self::start_logging(extra, Stdio::null())
    }

    /// Like [`NodeProcess::start`], with the node's stderr (its logs) going to `logs`.
    fn start_logging(extra: &[&str], logs: Stdio) -> NodeProcess {
        let mut command = voldisefs();
        command
            .args([
                "node",
                "start",
                "--listen",
                "127.0.0.1:0",
                "--http",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stderr(logs);
        Self::spawn(command)
    }

    /// Spawns `command` (a `node start`) and waits for its three ready lines.
    fn spawn(mut command: Command) -> NodeProcess {
        let child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut node = NodeProcess {
            child,
            lines: Vec::new(),
        };
        // Read the ready lines on a thread, so a silent child cannot hang the test.
        let stdout = node.child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + RUN_TIMEOUT;
        while node.lines.len() < 3 {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => node.lines.push(line),
                Err(_) => panic!("node start printed only {:?}", node.lines),
            }
        }
        node
    }

    /// The node's HTTP URL.
    fn url(&self) -> &str {
        self.lines[2].strip_prefix("http ").unwrap()
    }

    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends SIGTERM and returns the exit code.
    fn stop(mut self) -> Option<i32> {
        self.signal("-TERM");
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-KILL");
            let _ = self.child.wait();
        }
    }
}

#[test]
fn node_start_serves_and_stops_on_sigterm() {
    let node = NodeProcess::start(&[]);
    let lines = &node.lines;
    assert!(lines[0].starts_with("node "), "{lines:?}");
    let peer: SocketAddr = lines[1].strip_prefix("peer ").unwrap().parse().unwrap();
    assert_ne!(peer.port(), 0);
    let http: SocketAddr = lines[2]
        .strip_prefix("http http://")
        .unwrap()
        .parse()
        .unwrap();

    // /healthz answers 200.
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(RUN_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    // The CLI talks to it too, and it reports that its links are open.
    let output = run(voldisefs().args(["network", "--node", node.url()]));
    assert_code(&output, 0);
    assert!(String::from_utf8_lossy(&output.stdout).contains("OPEN"));
    assert_eq!(node.stop(), Some(0));
}

#[test]
fn json_logs_never_name_files_or_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let log_path = tmp.path().join("node.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let node = NodeProcess::start_logging(&["--log-format", "json"], Stdio::from(log));
    let file = tmp.path().join("very-secret-name.txt");
    std::fs::write(&file, data(3000)).unwrap();
    let secret_password = "hunter2-the-password";
    let output = run(voldisefs()
        .args([
            "put",
            "--quiet",
            file.to_str().unwrap(),
            "--node",
            node.url(),
        ])
        .env("VOLDISEFS_PASSWORD", secret_password));
    assert_code(&output, 0);
    // --quiet: the id alone on stdout, nothing on stderr.
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let id = stdout.trim();
    let out = tmp.path().join("copy");
    let output = run(voldisefs()
        .args([
            "get",
            "-q",
            id,
            "-o",
            out.to_str().unwrap(),
            "--node",
            node.url(),
        ])
        .env("VOLDISEFS_PASSWORD", secret_password));
    assert_code(&output, 0);
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
    assert_eq!(node.stop(), Some(0));

    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // The CLI sealed and opened the file itself: the node never learned its name or password.
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "node started"),
        "{logs}"
    );
    assert!(!logs.contains("very-secret-name"), "a file name was logged");
    assert!(!logs.contains(secret_password), "a password was logged");
}

#[test]
fn keygen_keyed_node_and_api_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let key = dir.join("network.key");
    let output = run(voldisefs().args(["keygen", "-o", key.to_str().unwrap()]));
    assert_code(&output, 0);
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64);
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrites a key by accident.
    let again = run(voldisefs().args(["keygen", "-o", key.to_str().unwrap()]));
    assert_code(&again, 1);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);

    let token = dir.join("api.token");
    std::fs::write(&token, "let-me-in\n").unwrap();
    let node = NodeProcess::start(&[
        "--network-key-file",
        key.to_str().unwrap(),
        "--api-token-file",
        token.to_str().unwrap(),
    ]);
    let file = dir.join("hello.txt");
    std::fs::write(&file, b"hello keyed world").unwrap();
    let refused = run(voldisefs()
        .args(["put", file.to_str().unwrap(), "--node", node.url()])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&refused, 1);
    assert!(
        stderr(&refused).contains("API needs a token"),
        "{}",
        stderr(&refused)
    );
    let output = run(voldisefs()
        .args(["put", file.to_str().unwrap(), "--node", node.url()])
        .args(["--api-token-file", token.to_str().unwrap()])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let output = run(voldisefs()
        .args(["network", "--json", "--node", node.url()])
        .env("VOLDISEFS_API_TOKEN", "let-me-in"));
    assert_code(&output, 0);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["security"], "keyed");
    assert_eq!(node.stop(), Some(0));
}

#[test]
fn put_warns_when_the_network_is_too_small_for_the_copies_wanted() {
    let net = Network::start(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lonely.txt");
    std::fs::write(&path, b"one node, three copies wanted").unwrap();
    let put = |extra: &[&str]| {
        run(voldisefs()
            .args(["put", path.to_str().unwrap(), "--node", &net.url(0)])
            .args(extra)
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };
    let output = put(&[]);
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains("warning: stored with 1 copy of each chunk instead of 3"),
        "{}",
        stderr(&output)
    );
    // --quiet keeps stderr empty for scripts.
    let output = put(&["--quiet"]);
    assert_code(&output, 0);
    assert!(output.stderr.is_empty(), "{}", stderr(&output));
}

/// `put -` streams standard input (no length known beforehand) under `--name` or `stdin`,
/// and `put /dev/stdin` (not a regular file) too; both read back byte for byte, under their
/// names.
#[test]
fn put_from_a_pipe() {
    let net = Network::start(2);
    let bytes = data(3_000_000);
    for (args, name) in [
        (
            vec!["put", "-", "--name", "piped data.bin"],
            "piped data.bin",
        ),
        (vec!["put", "-"], "stdin"),
        (vec!["put", "/dev/stdin"], "stdin"),
    ] {
        let output = run_with(
            voldisefs()
                .args(&args)
                .args(["--node", &net.url(0)])
                .env("VOLDISEFS_PASSWORD", PASSWORD),
            Some(bytes.clone()),
        );
        assert_code(&output, 0);
        let id = last_line(&output);
        let dir = tempfile::tempdir().unwrap();
        let output = run(voldisefs()
            .args(["get", &id, "-o", dir.path().to_str().unwrap()])
            .args(["--node", &net.url(1)])
            .env("VOLDISEFS_PASSWORD", PASSWORD));
        assert_code(&output, 0);
        assert_eq!(entries(dir.path()), vec![name.to_string()], "{args:?}");
        assert!(
            std::fs::read(dir.path().join(name)).unwrap() == bytes,
            "{args:?}"
        );
    }
    let output = run(voldisefs()
        .args(["put", "-", "--name", "", "--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 2);
}

/// Every file under `dir`, by path relative to it (`/`-separated), with its bytes.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for e in std::fs::read_dir(&at).unwrap() {
            let e = e.unwrap();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e
                    .path()
                    .strip_prefix(dir)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                out.insert(rel, std::fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// A folder with nested folders, an empty file, unicode and spaces in names.
fn make_folder(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let files = [
        ("album/cover.jpg", data(70_000)),
        ("album/empty", Vec::new()),
        (
            "album/sub dir/\u{e9}t\u{e9} \u{65e5}\u{672c}.txt",
            b"unicode".to_vec(),
        ),
        ("album/sub dir/deep/er/x.bin", data(1_500_000)),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        expected.insert(rel.to_owned(), bytes);
    }
    expected
}

#[test]
fn a_folder_round_trips_as_a_collection() {
    let net = Network::start(3);
    let src = tempfile::tempdir().unwrap();
    let expected = make_folder(src.path());
    let output = run(voldisefs()
        .args(["put", src.path().join("album").to_str().unwrap()])
        .args(["--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let id = last_line(&output);
    assert_eq!(id.len(), 64, "{id}");
    // One line per file before the collection's id.
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 5);

    // `ls ID` lists the files; `ls` shows the collection as a folder.
    let output = run(voldisefs()
        .args(["ls", &id, "--node", &net.url(1)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let listing = String::from_utf8_lossy(&output.stdout);
    for rel in expected.keys() {
        assert!(
            listing.contains(rel.as_str()),
            "{rel} missing from:\n{listing}"
        );
    }
    // Sealed by the CLI: the node's own listing never learned the collection's name.
    let output = run(voldisefs().args(["ls", "--node", &net.url(0)]));
    assert!(!String::from_utf8_lossy(&output.stdout).contains("album"));

    // The whole tree, through another node, byte for byte.
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("restored");
    let output = run(voldisefs()
        .args([
            "get",
            &id,
            "-o",
            out.to_str().unwrap(),
            "--node",
            &net.url(1),
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert_eq!(tree(&out), expected);
    // Without -o: the collection's name in the current directory.
    let output = run(voldisefs()
        .args(["get", &id, "--node", &net.url(2)])
        .current_dir(dst.path())
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert_eq!(tree(&dst.path().join("album")), expected);
    // Again: every file exists, so nothing is overwritten without --force.
    let output = run(voldisefs()
        .args(["get", &id, "--node", &net.url(2)])
        .current_dir(dst.path())
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 1);
    assert!(
        stderr(&output).contains("already exists"),
        "{}",
        stderr(&output)
    );

    // One file by its path.
    let one = dst.path().join("one.txt");
    let rel = "album/sub dir/\u{e9}t\u{e9} \u{65e5}\u{672c}.txt";
    let output = run(voldisefs()
        .args(["get", &id, "--path", rel, "-o", one.to_str().unwrap()])
        .args(["--node", &net.url(1)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert_eq!(std::fs::read(&one).unwrap(), b"unicode");
    // As a tar archive on standard output.
    let output = run(voldisefs()
        .args(["get", &id, "-o", "-", "--node", &net.url(1)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert!(output.stdout.len() > 1_570_000);
    assert_eq!(output.stdout.len() % 512, 0);
    // A real archive: tar extracts the very tree.
    let tarball = dst.path().join("album.tar");
    std::fs::write(&tarball, &output.stdout).unwrap();
    let untarred = dst.path().join("untarred");
    std::fs::create_dir(&untarred).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&untarred)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(
        tree(&untarred) == expected,
        "the archive holds another tree"
    );

    // The wrong password: exit 3, nothing written.
    let wrong = dst.path().join("wrong");
    let output = run(voldisefs()
        .args([
            "get",
            &id,
            "-o",
            wrong.to_str().unwrap(),
            "--node",
            &net.url(1),
        ])
        .env("VOLDISEFS_PASSWORD", "not the password"));
    assert_code(&output, 3);
    assert!(!wrong.exists());

    // Several paths make a collection too; rm deletes it with its files.
    let a = src.path().join("album/cover.jpg");
    let b = src.path().join("album/sub dir/deep/er/x.bin");
    let output = run(voldisefs()
        .args(["put", a.to_str().unwrap(), b.to_str().unwrap(), "--quiet"])
        .args(["--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let pair = last_line(&output);
    let output = run(voldisefs()
        .args(["ls", &pair, "--json", "--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["name"], "2 files");
    let member = json["files"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(json["files"][0]["path"], "cover.jpg");
    let output = run(voldisefs()
        .args(["rm", &pair, "--node", &net.url(1)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let output = run(voldisefs()
        .args(["get", &member, "-o", "-", "--node", &net.url(1)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 4);
}

/// A listing encoded as given, bypassing every writer check (what a hostile writer stores).
fn raw_listing(entries: &[&str]) -> Vec<u8> {
    let mut out = (entries.len() as u32).to_be_bytes().to_vec();
    for path in entries {
        out.extend_from_slice(&(path.len() as u16).to_be_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&[7; 32]);
        out.extend_from_slice(&[8; 32]);
    }
    out
}

#[test]
fn hostile_collections_are_refused_and_write_nothing() {
    use voldisefs_node::crypto::{FileKind, Password};

    let net = Network::start(2);
    let dst = tempfile::tempdir().unwrap();
    for (entries, reason) in [
        (&["../escape"][..], "`.` or `..` in path"),
        (&["../../etc/cron.d/x", "ok"], "`.` or `..` in path"),
        (&["/tmp/absolute"], "absolute path"),
        (&["twice", "twice"], "duplicate path"),
        (&["a", "a/b"], "a file and a folder share a path"),
    ] {
        let listing = bytes::Bytes::from(raw_listing(entries));
        let body = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(listing)]);
        let receipt = net
            .rt
            .block_on(net.nodes[0].upload_kind(
                "evil",
                Password::new(PASSWORD),
                FileKind::Collection,
                body,
            ))
            .unwrap();
        let out = dst.path().join("out");
        let output = run(voldisefs()
            .args(["get", &receipt.id.to_string(), "-o", out.to_str().unwrap()])
            .args(["--node", &net.url(1)])
            .current_dir(dst.path())
            .env("VOLDISEFS_PASSWORD", PASSWORD));
        assert_code(&output, 3);
        assert!(
            stderr(&output).contains("invalid collection") && stderr(&output).contains(reason),
            "{entries:?}: {}",
            stderr(&output)
        );
        assert!(entries_or_none(dst.path()).is_empty(), "{entries:?}");
    }
}

fn entries_or_none(dir: &Path) -> Vec<String> {
    if dir.exists() {
        entries(dir)
    } else {
        Vec::new()
    }
}

/// Where `get --resume -o PATH` keeps the part downloaded so far.
fn partial(path: &Path, id: &str) -> std::path::PathBuf {
    let name = path.file_name().unwrap().to_str().unwrap();
    path.with_file_name(format!(".{name}.{}.part", &id[..16]))
}

#[test]
fn get_resume_continues_a_partial_download_after_checking_it() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let bytes = data(5_000_000);
    let file = src.path().join("big.bin");
    std::fs::write(&file, &bytes).unwrap();
    let id = put(&net.url(0), &file);
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("big.bin");
    let get = || {
        run(voldisefs()
            .args(["get", &id, "--resume", "-o", out.to_str().unwrap()])
            .args(["--node", &net.url(1)])
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };

    // A part whose last bytes differ is refused: nothing written, the part kept as it was.
    let mut wrong = bytes[..1_500_000].to_vec();
    *wrong.last_mut().unwrap() ^= 1;
    std::fs::write(partial(&out, &id), &wrong).unwrap();
    let output = get();
    assert_code(&output, 1);
    assert!(
        stderr(&output).contains("is not the beginning"),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
    assert_eq!(std::fs::read(partial(&out, &id)).unwrap(), wrong);
    // So is one damaged in the middle (its end is right): the sampled windows catch it.
    let mut damaged = bytes[..1_500_000].to_vec();
    damaged[360_000] ^= 1;
    std::fs::write(partial(&out, &id), &damaged).unwrap();
    let output = get();
    assert_code(&output, 1);
    assert!(
        stderr(&output).contains("its bytes at 358616 differ"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(partial(&out, &id)).unwrap(), damaged);

    // A part planted as a symbolic link (by someone who can write to the folder) is never
    // followed: what it points at stays as it was.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    std::fs::write(&target, &bytes[..1_000]).unwrap();
    std::fs::remove_file(partial(&out, &id)).unwrap();
    std::os::unix::fs::symlink(&target, partial(&out, &id)).unwrap();
    let output = get();
    assert_code(&output, 1);
    assert!(
        stderr(&output).contains("not a regular file"),
        "{}",
        stderr(&output)
    );
    assert_eq!(std::fs::read(&target).unwrap(), &bytes[..1_000]);
    assert!(!out.exists());
    std::fs::remove_file(partial(&out, &id)).unwrap();

    // A true beginning (what an interrupted download leaves) is continued.
    std::fs::write(partial(&out, &id), &bytes[..2_000_123]).unwrap();
    let output = get();
    assert_code(&output, 0);
    assert!(std::fs::read(&out).unwrap() == bytes);
    assert!(!partial(&out, &id).exists());

    // Without a part, --resume is a plain download; an existing output needs --force.
    std::fs::remove_file(&out).unwrap();
    assert_code(&get(), 0);
    assert!(std::fs::read(&out).unwrap() == bytes);
    assert_code(&get(), 1);
    assert_eq!(entries(dst.path()), ["big.bin"]);
}

#[test]
fn get_resume_after_killing_a_download_halfway() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let bytes = data(96 << 20);
    let file = src.path().join("huge.bin");
    std::fs::write(&file, &bytes).unwrap();
    let id = put(&net.url(0), &file);
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("huge.bin");
    let command = || {
        let mut cmd = voldisefs();
        cmd.args(["get", &id, "--resume", "-q", "-o", out.to_str().unwrap()])
            .args(["--node", &net.url(1)])
            .env("VOLDISEFS_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    // Kill it once part of the file arrived (a few tries: the machine may be fast).
    let mut killed_at = None;
    for _ in 0..5 {
        let _ = std::fs::remove_file(partial(&out, &id));
        let mut child = command().spawn().unwrap();
        let deadline = Instant::now() + RUN_TIMEOUT;
        while Instant::now() < deadline {
            let have = std::fs::metadata(partial(&out, &id)).map_or(0, |m| m.len());
            if have > 0 && have < bytes.len() as u64 / 2 {
                child.kill().unwrap();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        child.wait().unwrap();
        if !out.exists() {
            killed_at = std::fs::metadata(partial(&out, &id)).ok().map(|m| m.len());
            break;
        }
        std::fs::remove_file(&out).unwrap();
    }
    let killed_at = killed_at.expect("never caught the download halfway");
    assert!(
        killed_at > 0 && killed_at < bytes.len() as u64,
        "{killed_at}"
    );
    let output = run(&mut command());
    assert_code(&output, 0);
    assert!(
        std::fs::read(&out).unwrap() == bytes,
        "resumed file differs"
    );
    assert!(!partial(&out, &id).exists());
}

#[test]
fn put_link_and_get_link_without_the_password() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let bytes = data(300_000);
    let file = src.path().join("shared report.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let output = run(voldisefs()
        .args([
            "put",
            file.to_str().unwrap(),
            "--link",
            "--node",
            &net.url(0),
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let lines: Vec<&str> = stdout.lines().collect();
    let (id, link) = (lines[0], lines[1]);
    assert_eq!(
        link,
        format!("{}/#id={id}&key={}", net.url(0), &link[link.len() - 64..])
    );

    // No password anywhere: the link alone.
    let dst = tempfile::tempdir().unwrap();
    let output = run(voldisefs()
        .args(["get", link, "-o", dst.path().to_str().unwrap()])
        .env_remove("VOLDISEFS_PASSWORD"));
    assert_code(&output, 0);
    assert!(std::fs::read(dst.path().join("shared report.pdf")).unwrap() == bytes);

    // A tampered key fails closed (exit 3, nothing written); a malformed link is a usage error.
    let last = link.chars().last().unwrap();
    let tampered = format!(
        "{}{}",
        &link[..link.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    let out = dst.path().join("tampered");
    let output = run(voldisefs().args(["get", &tampered, "-o", out.to_str().unwrap()]));
    assert_code(&output, 3);
    assert!(!out.exists());
    let output = run(voldisefs().args(["get", &link[..link.len() - 3]]));
    assert_code(&output, 2);
    let output = run(voldisefs().args(["get", link, "--resume", "-o", out.to_str().unwrap()]));
    assert_code(&output, 1);
}

#[test]
fn put_expires_and_the_file_is_gone_after() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("brief.txt");
    std::fs::write(&file, b"read me soon").unwrap();
    let output = run(voldisefs()
        .args(["put", file.to_str().unwrap(), "--expires", "2s"])
        .args(["--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains("expires at"),
        "{}",
        stderr(&output)
    );
    let id = last_line(&output);
    let get = || {
        run(voldisefs()
            .args(["get", &id, "-o", "-", "--node", &net.url(1)])
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };
    let output = get();
    assert_code(&output, 0);
    assert_eq!(output.stdout, b"read me soon");
    // Within a few seconds: not found (exit 4), through any node.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = get();
        if output.status.code() == Some(4) {
            break;
        }
        assert_code(&output, 0);
        assert!(Instant::now() < deadline, "the file outlived its expiry");
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = run(voldisefs()
        .args(["put", file.to_str().unwrap(), "--expires", "soon"])
        .args(["--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 2);
}

#[test]
fn put_once_is_read_once() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("secret.txt");
    std::fs::write(&file, b"for your eyes only").unwrap();
    let output = run(voldisefs()
        .args([
            "put",
            file.to_str().unwrap(),
            "--once",
            "--node",
            &net.url(0),
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let id = last_line(&output);
    let get = || {
        run(voldisefs()
            .args(["get", &id, "-o", "-", "--node", &net.url(1)])
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };
    let output = get();
    assert_code(&output, 0);
    assert_eq!(output.stdout, b"for your eyes only");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get().status.code() != Some(4) {
        assert!(Instant::now() < deadline, "read twice");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_folder_link_recreates_the_folder_without_the_password() {
    let net = Network::start(2);
    let src = tempfile::tempdir().unwrap();
    let expected = make_folder(src.path());
    let output = run(voldisefs()
        .args(["put", src.path().join("album").to_str().unwrap(), "--link"])
        .args(["--node", &net.url(0)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    let link = last_line(&output);
    assert!(link.contains("#id="), "{link}");
    let dst = tempfile::tempdir().unwrap();
    let out = dst.path().join("from-link");
    let output = run(voldisefs()
        .args(["get", &link, "-o", out.to_str().unwrap()])
        .env_remove("VOLDISEFS_PASSWORD"));
    assert_code(&output, 0);
    assert_eq!(tree(&out), expected);
}

/// `put --redundancy rs:K+M` stores Reed-Solomon shards and reads back through another node;
/// a spec needing more nodes than are live, a replica count other than the network's and a
/// malformed spec are refused with clear messages.
#[test]
fn put_redundancy_rs_round_trips_and_bad_specs_are_refused() {
    let net = Network::start(3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shards.bin");
    let bytes = data((1 << 20) + 12_345);
    std::fs::write(&path, &bytes).unwrap();
    let put = |extra: &[&str]| {
        run(voldisefs()
            .args(["put", path.to_str().unwrap(), "--node", &net.url(0)])
            .args(extra)
            .env("VOLDISEFS_PASSWORD", PASSWORD))
    };
    let output = put(&["--redundancy", "rs:2+1"]);
    assert_code(&output, 0);
    assert!(
        stderr(&output).contains("kept as rs:2+1"),
        "{}",
        stderr(&output)
    );
    let id = last_line(&output);
    let out = dir.path().join("back.bin");
    let output = run(voldisefs()
        .args([
            "get",
            &id,
            "--node",
            &net.url(2),
            "-o",
            out.to_str().unwrap(),
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);

    let small = dir.path().join("small.bin");
    std::fs::write(&small, b"six nodes wanted").unwrap();
    let output = run(voldisefs()
        .args(["put", small.to_str().unwrap(), "--node", &net.url(0)])
        .args(["--redundancy", "rs:4+2"])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("rs:4+2 needs 6 live nodes, and 3 are live"),
        "{}",
        stderr(&output)
    );
    let output = put(&["--redundancy", "replicas:2"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("keeps 3 copies"),
        "{}",
        stderr(&output)
    );
    let output = put(&["--redundancy", "rs:4"]);
    assert_code(&output, 2);
    assert!(stderr(&output).contains("rs:K+M"), "{}", stderr(&output));
}

/// A node configured by a TOML file alone (`node start --config`), as the systemd unit runs
/// it: `node config` shows the settings with a flag and a variable overriding the file, and
/// at the default log level the redirected text log has one plain line per transfer and no
/// terminal colour codes.
#[test]
fn a_node_runs_from_a_config_file_with_plain_logs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("node.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\nhttp = \"127.0.0.1:0\"\ncapacity = \"64MiB\"\n\
         chunk-size = \"64KiB\"\nlog-format = \"text\"\n",
    )
    .unwrap();
    let output = run(voldisefs()
        .args(["node", "config", "--config", config.to_str().unwrap()])
        .args(["--capacity", "32MiB"])
        .env("VOLDISEFS_CHUNK_SIZE", "128KiB"));
    assert_code(&output, 0);
    let printed = String::from_utf8(output.stdout).unwrap();
    for line in [
        "listen = \"127.0.0.1:0\"",
        "capacity = 33554432",
        "chunk-size = 131072",
        "log-format = \"text\"",
        "redundancy = \"replicas:3\"",
    ] {
        assert!(printed.contains(line), "{line} missing from:\n{printed}");
    }
    let bad = tmp.path().join("bad.toml");
    std::fs::write(&bad, "capasity = 1\n").unwrap();
    let output = run(voldisefs().args(["node", "config", "--config", bad.to_str().unwrap()]));
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).contains("unknown field `capasity`"),
        "{}",
        stderr(&output)
    );

    let log_path = tmp.path().join("node.log");
    let mut command = voldisefs();
    command
        .args(["node", "start", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()));
    let node = NodeProcess::spawn(command);
    let file = tmp.path().join("plain.txt");
    std::fs::write(&file, data(2000)).unwrap();
    let id = put(node.url(), &file);
    assert_eq!(node.stop(), Some(0));
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !logs.contains('\u{1b}'),
        "colour codes in a redirected log:\n{logs}"
    );
    let started = logs
        .lines()
        .find(|l| l.contains("node started"))
        .unwrap_or_else(|| panic!("no start line at the default level:\n{logs}"));
    assert!(started.contains("INFO"), "{started}");
    // Sealed by the CLI: the node saw neither the name nor the contents.
    assert!(!id.is_empty());
    assert!(!logs.contains("plain.txt"), "a file name was logged");
}

/// A TCP proxy in front of a node that records every byte crossing it, both ways, and (when
/// `corrupt`) flips one bit in the body of every `application/octet-stream` answer: a node
/// that serves wrong bytes, as the CLI meets it.
struct Proxy {
    addr: SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Proxy {
    fn start(target: &str, corrupt: bool) -> Self {
        let target: SocketAddr = target.trim_start_matches("http://").parse().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(target) else {
                    break;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let up = record.clone();
                std::thread::spawn(move || relay_raw(client, server, &up));
                let down = record.clone();
                std::thread::spawn(move || relay_answers(s2, c2, &down, corrupt));
            }
        });
        Self { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

fn relay_raw(mut from: TcpStream, mut to: TcpStream, seen: &std::sync::Mutex<Vec<u8>>) {
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        seen.lock().unwrap().extend_from_slice(&buf[..n]);
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// Relays HTTP answers one by one (head, then a Content-Length body), flipping a bit in
/// octet-stream bodies when `corrupt`.
fn relay_answers(
    from: TcpStream,
    mut to: TcpStream,
    seen: &std::sync::Mutex<Vec<u8>>,
    corrupt: bool,
) {
    let mut reader = BufReader::new(from);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = to.write_all(&head);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(_) => {}
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
        let length = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok());
        let octets = text.contains("application/octet-stream");
        let Some(length) = length else {
            // No length (chunked): relay the rest as it comes.
            let _ = to.write_all(&head);
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
            let _ = to.write_all(&rest);
            return;
        };
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().extend_from_slice(&head);
        seen.lock().unwrap().extend_from_slice(&body);
        if corrupt && octets && !body.is_empty() {
            let mid = body.len() / 2;
            body[mid] ^= 0x10;
        }
        if to.write_all(&head).is_err() || to.write_all(&body).is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nodes_never_see_a_password_a_name_a_plaintext_or_a_link_key() {
    use base64::Engine as _;
    let net = Network::start(3);
    let (p0, p1) = (
        Proxy::start(&net.url(0), false),
        Proxy::start(&net.url(1), false),
    );
    let tmp = tempfile::tempdir().unwrap();
    let secret_name = "quarterly-salaries-SECRET.txt";
    let plaintext: Vec<u8> = b"PLAINTEXT-MARKER "
        .iter()
        .copied()
        .cycle()
        .take(300_000)
        .collect();
    let file = tmp.path().join(secret_name);
    std::fs::write(&file, &plaintext).unwrap();
    let pw = |cmd: &mut Command| {
        cmd.env("VOLDISEFS_PASSWORD", PASSWORD);
    };

    // put --link through proxy 0.
    let mut cmd = voldisefs();
    cmd.args(["put", file.to_str().unwrap(), "--link", "--node", &p0.url()]);
    pw(&mut cmd);
    let output = run(&mut cmd);
    assert_code(&output, 0);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut lines = stdout.lines();
    let id = lines.next().unwrap().to_string();
    let link = lines.next().unwrap().to_string();
    let key = link.rsplit("key=").next().unwrap().to_string();
    // The link points at the node it was made on; open it through proxy 1 instead.
    let link_via_1 = link.replacen(&p0.url(), &p1.url(), 1);

    // get with the password through proxy 0; through the link via proxy 1.
    for (args, out) in [
        (
            vec!["get".to_string(), id.clone(), "--node".into(), p0.url()],
            "by-password",
        ),
        (vec!["get".to_string(), link_via_1.clone()], "by-link"),
    ] {
        let target = tmp.path().join(out);
        let mut cmd = voldisefs();
        cmd.args(&args).args(["-o", target.to_str().unwrap()]);
        pw(&mut cmd);
        let output = run(&mut cmd);
        assert_code(&output, 0);
        assert_eq!(std::fs::read(&target).unwrap(), plaintext, "{out}");
    }

    // A folder with nested folders: put, ls, get, rm, all through proxy 1.
    let root = tmp.path().join("confidential-folder");
    let expected = make_folder(&root);
    let mut cmd = voldisefs();
    cmd.args(["put", root.to_str().unwrap(), "--node", &p1.url()]);
    pw(&mut cmd);
    let output = run(&mut cmd);
    assert_code(&output, 0);
    let folder_id = last_line(&output);
    let mut cmd = voldisefs();
    cmd.args(["ls", &folder_id, "--node", &p1.url()]);
    pw(&mut cmd);
    assert_code(&run(&mut cmd), 0);
    let restored = tmp.path().join("restored");
    let mut cmd = voldisefs();
    cmd.args([
        "get",
        &folder_id,
        "-o",
        restored.to_str().unwrap(),
        "--node",
        &p1.url(),
    ]);
    pw(&mut cmd);
    assert_code(&run(&mut cmd), 0);
    assert!(
        tree(&restored.join("confidential-folder")) == expected,
        "the folder came back different"
    );
    for target in [&folder_id, &id] {
        let mut cmd = voldisefs();
        cmd.args(["rm", target, "--node", &p1.url()]);
        pw(&mut cmd);
        assert_code(&run(&mut cmd), 0);
    }

    let b64 = base64::engine::general_purpose::STANDARD;
    let password_hex: String = PASSWORD.bytes().map(|b| format!("{b:02x}")).collect();
    let key_bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("password".into(), PASSWORD.as_bytes().to_vec()),
        ("password (hex)".into(), password_hex.into_bytes()),
        (
            "password (base64)".into(),
            b64.encode(PASSWORD).into_bytes(),
        ),
        ("file name".into(), secret_name.as_bytes().to_vec()),
        ("plaintext".into(), b"PLAINTEXT-MARKER".to_vec()),
        ("link key (hex)".into(), key.clone().into_bytes()),
        ("link key (raw)".into(), key_bytes),
        ("folder name".into(), b"confidential-folder".to_vec()),
    ];
    for (rel, bytes) in &expected {
        needles.push((
            format!("path {rel}"),
            rel.rsplit('/').next().unwrap().as_bytes().to_vec(),
        ));
        if bytes.len() >= 16 {
            needles.push((format!("content of {rel}"), bytes[..16].to_vec()));
        }
    }
    for (name, proxy) in [("proxy 0", &p0), ("proxy 1", &p1)] {
        let seen = proxy.seen();
        assert!(seen.len() > 300_000, "{name} saw only {} bytes", seen.len());
        for (what, needle) in &needles {
            assert!(!contains(&seen, needle), "the {what} crossed {name}");
        }
    }
}

#[test]
fn a_node_serving_wrong_bytes_is_caught_and_another_node_serves_them() {
    let net = Network::start(3);
    let liar = Proxy::start(&net.url(0), true);
    let tmp = tempfile::tempdir().unwrap();
    let bytes = data(2_500_000);
    let file = tmp.path().join("f.bin");
    std::fs::write(&file, &bytes).unwrap();
    let id = put(&net.url(1), &file);

    // The liar first, an honest node second: every object is checked, the liar is named, and
    // the file comes back whole.
    let out = tmp.path().join("back.bin");
    let output = run(voldisefs()
        .args(["get", &id, "-o", out.to_str().unwrap()])
        .args(["--node", &liar.url(), "--node", &net.url(2)])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 0);
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(
        stderr(&output).contains(&format!("node {}/ served wrong bytes", liar.url())),
        "{}",
        stderr(&output)
    );

    // The liar alone: a clear error, exit 3, and no file (not even a partial one) written.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.bin");
    let output = run(voldisefs()
        .args([
            "get",
            &id,
            "-o",
            out.to_str().unwrap(),
            "--node",
            &liar.url(),
        ])
        .env("VOLDISEFS_PASSWORD", PASSWORD));
    assert_code(&output, 3);
    assert!(
        stderr(&output).contains("served wrong bytes"),
        "{}",
        stderr(&output)
    );
    assert_eq!(entries(dir.path()), Vec::<String>::new());
}
