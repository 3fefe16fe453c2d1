//! The language agents through the real server: `msp-mesh serve` started as a process on a
//! free port, spoken to over HTTP/1.1. Expectations are independent of the models' own
//! output: hand-checked indicators, ATT&CK's own descriptions, the data sets' labels, a
//! policy written to cover some controls and not others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Server {
    port: u16,
    _child: ChildGuard,
    /// Held open for the life of the test process; when it exits the pipe closes and the
    /// server (started with `--exit-on-stdin-eof`) shuts down, so no server outlives the tests.
    _stdin: std::process::ChildStdin,
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// `msp-mesh` with the workspace's prepared models, data and caches, and its own partner file.
fn mesh_command(subcommand: &str, partners: &std::path::Path) -> Command {
    let models_dir = mesh_models::workspace_models_dir();
    let mut command = Command::new(env!("CARGO_BIN_EXE_msp-mesh"));
    command
        .arg(subcommand)
        .arg("--models-dir")
        .arg(&models_dir)
        .arg("--data-dir")
        .arg(mesh_models::workspace_data_dir())
        .arg("--cache-dir")
        .arg(models_dir.join(".cache"))
        .arg("--partners-file")
        .arg(partners)
        .args(["--auto-pull", "false"]);
    command
}

/// One server for every test of this binary (killed when the test process exits).
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        mesh_models::require_local_model("all-minilm-l6-v2");
        let partners =
            std::env::temp_dir().join(format!("mesh-partners-{}.json", std::process::id()));
        let _ = std::fs::remove_file(&partners);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = mesh_command("serve", &partners)
            .args([
                "--addr",
                &format!("127.0.0.1:{port}"),
                "--exit-on-stdin-eof",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("msp-mesh starts");
        let stdin = child.stdin.take().expect("piped stdin");
        let server = Server {
            port,
            _child: ChildGuard(child),
            _stdin: stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(600);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    })
}

/// Sends one request and returns the status and the JSON body.
fn http(method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let port = server().port;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

fn post(path: &str, body: Value) -> (u16, Value) {
    http("POST", path, "application/json", &body.to_string())
}

fn kinds_and_values(v: &Value) -> Vec<(String, String)> {
    v["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_string(),
                i["value"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn threat_analysis_extracts_indicators_and_names_its_models() {
    let text = "Ransomware note found on FS01. The loader called hxxp://update-check[.]net/gate.php from 185.220.101[.]4 \
                and dropped C:\\Users\\Public\\svc.exe (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08). \
                It exploits CVE-2023-4966.";
    let (status, v) = post("/threat-intelligence/analyze", json!({"text": text}));
    assert_eq!(status, 200, "{v}");
    let got = kinds_and_values(&v);
    for want in [
        ("url", "http://update-check.net/gate.php"),
        ("ipv4", "185.220.101.4"),
        ("file_path", "C:\\Users\\Public\\svc.exe"),
        (
            "sha256",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        ),
        ("cve", "CVE-2023-4966"),
    ] {
        assert!(
            got.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(k, _)| k == "domain"),
        "the URL's host is not reported again: {got:?}"
    );
    let model = v["model_used"].as_str().unwrap();
    assert!(
        model.contains("threat-category-minilm@1") && model.contains("all-minilm-l6-v2@1"),
        "{model}"
    );
    assert_ne!(v["threat_type"], "benign");
    let p: f64 = v["category_probabilities"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((p - 1.0).abs() < 1e-3, "probabilities sum to {p}");
    assert!(!v["techniques"].as_array().unwrap().is_empty());
    assert!(!v["recommended_actions"].as_array().unwrap().is_empty());
    assert!(["LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&v["severity"].as_str().unwrap()));
    assert!(v["timestamp"].is_string() && v["detection_time"].is_string());
}

/// ATT&CK's own description of a technique retrieves that technique first.
#[test]
fn attack_technique_is_retrieved_for_its_own_description() {
    let attack = mesh_agents::knowledge::attack::Attack::load(
        &mesh_models::workspace_data_dir().join("attack-enterprise"),
    )
    .unwrap();
    for id in ["T1486", "T1566.001", "T1110.003"] {
        let t = attack.technique(id).unwrap();
        let (status, v) = post(
            "/threat-intelligence/analyze",
            json!({"text": t.description, "top_k": 3}),
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["techniques"][0]["id"], id, "{}", v["techniques"]);
    }
}

/// Raw e-mails from the held-out SpamAssassin folders are recognised and judged by the e-mail head;
/// the head must agree with the folder labels on at least 34 of the first 40 (85%).
#[test]
fn raw_emails_are_judged_by_the_email_head() {
    let dir = mesh_models::workspace_data_dir().join("spam-assassin");
    let mut right = 0;
    let mut total = 0;
    for (folder, spam) in [("spam-2", true), ("easy-ham-2", false)] {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for f in files.iter().take(20) {
            let raw: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            let (status, v) = post("/threat-intelligence", json!({"text": raw["text"]}));
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["judged_by"], "email-head");
            assert!(v["email"]["model_used"]
                .as_str()
                .unwrap()
                .starts_with("spam-email-minilm@1"));
            let judged_spam = v["threat_type"] != "benign";
            right += usize::from(judged_spam == spam);
            total += 1;
        }
    }
    assert!(
        right >= 34,
        "{right}/{total} held-out e-mails judged as labelled"
    );
}

#[test]
fn ordinary_text_is_benign_and_low() {
    let (status, v) = post(
        "/threat-intelligence/analyze",
        json!({"text": "Hi team, the quarterly all-hands moved to Thursday at 3pm in the main conference room. Lunch will be provided."}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["threat_type"], "benign", "{v}");
    assert_eq!(v["severity"], "LOW");
    assert!(v["indicators"].as_array().unwrap().is_empty());
}

/// UCI sentences (labelled by their authors) through the market route.
#[test]
fn market_sentiment_follows_labelled_sentences() {
    let (s, v) = post(
        "/market-intelligence/analyze",
        json!({"query": "Excellent product, works great and the price is fantastic.", "industry_segment": "smb"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["sentiment"], "POSITIVE");
    assert!(v["sentiment_score"].as_f64().unwrap() > 0.8);
    assert_eq!(v["market_impact"], "Positive");
    assert_eq!(v["industry_segment"], "smb");
    assert!(v["model_used"]
        .as_str()
        .unwrap()
        .starts_with("sentiment-minilm@1"));
    let (_, v) = post(
        "/market-intelligence",
        json!({"query": "Terrible support. The device broke after two days and nobody answered."}),
    );
    assert!(v["sentiment_score"].as_f64().unwrap() < 0.2, "{v}");
    let (_, v) = post(
        "/market-intelligence/analyze",
        json!({"query": "Acme Networks Inc. reported revenue up 12% to $4.5 million in Q3 2025. Customers love the new dashboard. However the outage last week was a disaster for clients."}),
    );
    assert_eq!(v["sentences"].as_array().unwrap().len(), 3);
    assert_eq!(v["sentiment"], "MIXED", "{v}");
    let kinds: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["organisation", "percentage", "money", "date"]);
}

#[test]
fn nlp_query_answers_from_the_knowledge_base_or_says_it_does_not_know() {
    let (s, v) = post(
        "/nlp-query/ask",
        json!({"query": "How do adversaries use spearphishing attachments?"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["answer_method"], "extractive");
    assert_eq!(v["answer"], v["response"]);
    let retrieved: Vec<&str> = v["passages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert!(retrieved[..3].contains(&"T1566.001"), "{retrieved:?}");
    let sources: Vec<&str> = v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert!(
        !sources.is_empty() && sources.iter().all(|s| retrieved.contains(s)),
        "{sources:?}"
    );
    assert!(
        v["answer"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("attach"),
        "{v}"
    );
    assert!(v["confidence"].as_f64().unwrap() >= 0.35);
    let (_, v) = post(
        "/nlp-query",
        json!({"query": "What is the best recipe for banana bread with walnuts?"}),
    );
    assert_eq!(v["answer_method"], "none", "{v}");
    assert!(v["answer"].as_str().unwrap().starts_with("I don't know"));
    assert!(v["sources"].as_array().unwrap().is_empty());
}

#[test]
fn compliance_finds_covered_controls_and_gaps() {
    let policy = "All hardware assets, including servers, laptops and network devices, are recorded in an asset inventory that is reviewed quarterly, and unauthorised devices are removed from the network. \
                  Multi-factor authentication is required for all remote access and for every administrator account. \
                  Backups of critical systems are taken daily, stored offline, and restores are tested every month.";
    let (s, v) = post(
        "/compliance/check",
        json!({"framework": "CIS", "policy_text": policy}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["framework"], "cis-v8");
    let covered: Vec<&str> = v["controls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["covered"] == true)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in ["CIS-1", "CIS-11"] {
        assert!(covered.contains(&id), "{id} not covered: {covered:?}");
    }
    for id in ["CIS-18", "CIS-14", "CIS-16"] {
        assert!(!covered.contains(&id), "{id} should be a gap: {covered:?}");
    }
    assert_eq!(
        v["gaps_found"].as_u64().unwrap() as usize,
        18 - covered.len()
    );
    let score = v["compliance_score"].as_f64().unwrap();
    assert!(score > 0.0 && score < 60.0, "{score}");
    assert_eq!(v["status"], "Needs Improvement");
    assert_eq!(
        v["recommendations"].as_array().unwrap().len(),
        v["gaps_found"].as_u64().unwrap() as usize
    );
}

#[test]
fn partners_are_ranked_filtered_and_replaceable() {
    let (s, v) = post(
        "/collaboration/match",
        json!({"requirements": "We need a HIPAA compliance partner for a hospital group's healthcare IT", "top_k": 3}),
    );
    assert_eq!(s, 200, "{v}");
    let top = &v["matches"][0];
    assert!(
        top["skills"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "compliance-hipaa"),
        "{top}"
    );
    assert!(v["required_skills"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "compliance-hipaa"));
    let (_, v) = post(
        "/collaboration",
        json!({"requirements": "penetration testing", "country": "GB"}),
    );
    assert!(
        v["matches"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["country"] == "GB"),
        "{v}"
    );
    assert_eq!(v["sample_data"], true);

    // Replace the sample set with the caller's own partners (CSV), then match against them.
    let csv = "msp_id,name,city,region,country,skills,certifications,employees,profile\n\
               p-1,Harbour IT,Leeds,ENG,GB,helpdesk;microsoft-365,,12,Helpdesk and Microsoft 365 support for small offices.\n\
               p-2,Red Cell Security,Leeds,ENG,GB,penetration-testing;vulnerability-management,CREST,8,Penetration testing of web applications and networks.\n";
    let (s, v) = http("PUT", "/collaboration/partners", "text/csv", csv);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["count"], 2);
    assert_eq!(v["sample_data"], false);
    let (_, v) = post(
        "/collaboration/match",
        json!({"requirements": "We need a penetration test of our web application"}),
    );
    assert_eq!(v["matches"][0]["msp_id"], "p-2", "{v}");
    assert_eq!(v["sample_data"], false);
    let (s, v) = http(
        "PUT",
        "/collaboration/partners",
        "text/csv",
        "msp_id,name\n,nameless\n",
    );
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["field"], "msp_id");
}

#[test]
fn validation_errors_are_422_naming_the_field() {
    for (path, body, field) in [
        (
            "/threat-intelligence/analyze",
            json!({"text": "  "}),
            "text",
        ),
        ("/threat-intelligence/analyze", json!({}), "text"),
        (
            "/threat-intelligence/analyze",
            json!({"text": "x", "top_k": 0}),
            "top_k",
        ),
        ("/market-intelligence/analyze", json!({"query": 5}), "query"),
        ("/nlp-query/ask", json!({"query": ""}), "query"),
        (
            "/compliance/check",
            json!({"framework": "nope", "policy_text": "We back up data."}),
            "framework",
        ),
        (
            "/collaboration/match",
            json!({"requirements": "x", "top_k": 500}),
            "top_k",
        ),
    ] {
        let (s, v) = post(path, body.clone());
        assert_eq!(s, 422, "{path} {body}: {v}");
        assert_eq!(v["field"], field, "{path} {body}: {v}");
    }
}

#[test]
fn openapi_lists_the_agent_routes() {
    let (s, v) = http("GET", "/openapi.json", "application/json", "");
    assert_eq!(s, 200);
    for path in [
        "/threat-intelligence/analyze",
        "/market-intelligence/analyze",
        "/nlp-query/ask",
        "/collaboration/match",
        "/compliance/check",
    ] {
        assert!(v["paths"][path]["post"].is_object(), "{path} missing");
    }
    assert!(v["components"]["schemas"]["ThreatResponse"].is_object());
}

/// `msp-mesh score`: ids passed through, input order kept, a bad line answered with an error
/// without stopping the run.
#[test]
fn batch_scoring_keeps_order_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let output = dir.path().join("out.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"id": "a", "query": "Excellent value, I love it."}"#,
            r#"{"id": "b", "query": ""}"#,
            "not json",
            r#"{"id": 7, "query": "Awful. It broke on day one."}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let status = mesh_command("score", &dir.path().join("partners.json"))
        .args(["--agent", "market-intelligence"])
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .status()
        .unwrap();
    assert!(status.success());
    let lines: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["sentiment"], "POSITIVE");
    assert_eq!(lines[1]["id"], "b");
    assert_eq!(lines[1]["error"]["field"], "query");
    assert_eq!(lines[2]["error"]["error_type"], "bad_json");
    assert_eq!(lines[3]["id"], 7);
    assert_eq!(lines[3]["sentiment"], "NEGATIVE");
}
