//! The test harness of the HTTP suites: `msp-mesh serve` started as a process on a free port
//! with the workspace's prepared models, data and caches, spoken to over HTTP/1.1.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The POST route of every agent (contract paths), plus client-health training.
pub const AGENT_POST_ROUTES: &[&str] = &[
    "/threat-intelligence/analyze",
    "/market-intelligence/analyze",
    "/nlp-query/ask",
    "/collaboration/match",
    "/compliance/check",
    "/anomaly/detect",
    "/revenue/forecast",
    "/resource/optimize",
    "/client-health/predict",
    "/client-health/train",
    "/federated/train",
];

/// A running server; killed when dropped. With `--exit-on-stdin-eof` it also stops when the
/// test process exits (its stdin pipe closes), so no server outlives the tests.
pub struct Server {
    pub port: u16,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `msp-mesh <subcommand>` (words separated by spaces, e.g. `bundle push s3://b/p`) with the
/// workspace's prepared models, data and caches, and its own partner file.
/// Runs `command` to its end; panics with its standard error unless it succeeded.
pub fn succeed(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

pub fn mesh_command(subcommand: &str, partners: &Path) -> Command {
    let models_dir = mesh_testing::workspace_models_dir();
    let mut command = Command::new(env!("CARGO_BIN_EXE_msp-mesh"));
    command
        .args(subcommand.split_whitespace())
        .arg("--models-dir")
        .arg(&models_dir)
        .arg("--data-dir")
        .arg(mesh_testing::workspace_data_dir())
        .arg("--cache-dir")
        .arg(models_dir.join(".cache"))
        .arg("--partners-file")
        .arg(partners)
        .args(["--auto-pull", "false"])
        // No test writes a state file it did not name (`--state-db` wins over this).
        .env("MESH_STATE_DB", ":memory:");
    command
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `msp-mesh serve` with `args` added and waits until it accepts connections.
    pub fn start(partners: &Path, args: &[&str]) -> Server {
        Self::start_on(free_port(), partners, args)
    }

    /// Same, on a given port (a restart on the same address).
    pub fn start_on(port: u16, partners: &Path, args: &[&str]) -> Server {
        Self::start_with_env(port, partners, args, &[])
    }

    /// Same, with environment variables set for the server.
    pub fn start_with_env(
        port: u16,
        partners: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        mesh_testing::require_local_model("all-minilm-l6-v2");
        let mut child = mesh_command("serve", partners)
            .envs(env.iter().copied())
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--exit-on-stdin-eof",
            ])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("msp-mesh starts");
        // The pipe is leaked on purpose: it closes when the test process exits.
        std::mem::forget(child.stdin.take());
        let server = Server { port, child };
        wait_for_port(port, "server", Duration::from_secs(600));
        server
    }

    /// Kills the process at once (SIGKILL): no shutdown code runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends one request with extra header lines; returns the status, the raw head and the body
    /// (JSON when it parses, else a string).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, Value) {
        request_at(self.port, method, path, headers, body)
    }

    /// Sends one request with a content type; returns the status and the JSON body.
    pub fn http(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
        let (status, _, value) = self.request(
            method,
            path,
            &[("Content-Type", content_type)],
            body.as_bytes(),
        );
        (status, value)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.http("POST", path, "application/json", &body.to_string())
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        self.http("GET", path, "application/json", "")
    }
}

/// One HTTP/1.1 request to `127.0.0.1:port`; returns the status, the raw head and the body
/// (JSON when it parses, else a string).
pub fn request_at(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Value) {
    try_request_at(port, method, path, headers, body).expect("an HTTP response")
}

/// [`request_at`], or `None` when no complete response comes (refused, reset, cut short: a
/// server killed mid-request).
pub fn try_request_at(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .ok()?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) and close before reading a large body.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Some((
        status,
        head.to_string(),
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

/// Waits until something accepts connections on the loopback port.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A test tool `scripts/aws_tools.sh` installs (`target/tools/aws/bin/<name>`), or the path in
/// `env_var`.
pub fn aws_tool(env_var: &str, name: &str) -> std::path::PathBuf {
    let path = std::env::var_os(env_var)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/tools/aws/bin/{name}"))
        });
    assert!(
        path.is_file(),
        "{} is missing: run scripts/aws_tools.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// sentence-transformers' vector of a sentence of the MiniLM reference fixture.
pub fn reference_vector(sentence: &str) -> Vec<f32> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../inference/tests/fixtures/minilm_reference.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let i = v["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s == sentence)
        .unwrap_or_else(|| panic!("`{sentence}` is not in the fixture"));
    v["embeddings"][i]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// moto's server (DynamoDB, SQS, Kinesis, EventBridge, ...) on a free port; killed when dropped.
pub struct Moto {
    child: std::process::Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_moto() -> Moto {
    let path = aws_tool("MESH_MOTO_SERVER", "moto_server");
    let port = free_port();
    let child = std::process::Command::new(path)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    wait_for_port(port, "moto_server", Duration::from_secs(60));
    moto
}

/// An SDK configuration for a local server at `endpoint` (fixed test credentials).
pub fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            aws_sdk_dynamodb::config::Credentials::new(
                "AKIDMOTO",
                "moto-secret",
                None,
                None,
                "test",
            ),
        ))
        .build()
}

/// The environment that points the SDK of a child process at a local server.
pub fn aws_env(endpoint: &str) -> [(&str, &str); 4] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "AKIDMOTO"),
        ("AWS_SECRET_ACCESS_KEY", "moto-secret"),
        ("AWS_REGION", "us-east-1"),
    ]
}

/// `n` anomaly requests (24 points, a spike in every third), ids `r000000`, ...
pub fn anomaly_records(path: &Path, n: usize) {
    let mut text = String::with_capacity(n * 220);
    for i in 0..n {
        let values: Vec<f64> = (0..24)
            .map(|t| {
                if i % 3 == 0 && t == (i * 7) % 24 {
                    99.0
                } else {
                    50.0 + ((i * 31 + t * 17) % 13) as f64 * 0.5
                }
            })
            .collect();
        text.push_str(&serde_json::json!({"id": format!("r{i:06}"), "values": values}).to_string());
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

/// Creates an SQS queue with `attributes`; returns its URL and ARN.
pub async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: &[(aws_sdk_sqs::types::QueueAttributeName, String)],
) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let url = sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(attributes.iter().cloned().collect()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}
