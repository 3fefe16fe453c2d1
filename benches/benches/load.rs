//! Load test of a running server, in the manner of the plan's "1,000 requests with Apache
//! Bench": a fixed number of requests (bounded) at a fixed concurrency, each on a new
//! connection, to a loopback address only. Reports throughput, p50/p95/p99 latency and
//! errors per route and concurrency, as JSON lines (and `--jsonl FILE`).
//!
//! Each row also gives the p95 of the admitted (2xx) requests alone and how many 429s lacked
//! `retry-after`, for the overload run (more clients than the server's in-flight bound).
//!
//! `scripts/load_test.sh` starts a release server and runs this against it:
//! `cargo bench -p mesh-benches --bench load -- --port 8080 [--requests 1000]
//! [--concurrency 10,100] [--routes classification,numeric] [--api-key KEY]`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mesh_benches::{arg_value, emit, http_exchange, http_request, loopback_port, quantile_ms};
use serde_json::{json, Value};

/// Most requests one scenario may send (the test is bounded).
const MAX_REQUESTS: usize = 100_000;
/// Most concurrent clients.
const MAX_CONCURRENCY: usize = 1_000;

/// A route under load and its request bodies (sent in rotation).
struct Scenario {
    name: &'static str,
    path: &'static str,
    bodies: Vec<String>,
}

fn scenarios() -> Vec<Scenario> {
    let threats = [
        "Multiple failed RDP logins from 185.220.101.4 followed by a successful login and new admin account creation.",
        "Phishing e-mail asks staff to reset their Microsoft 365 password at hxxps://m365-reset[.]top/login.",
        "Quarterly patching finished; all endpoints report healthy antivirus definitions.",
        "Ransomware note found on the file server; shadow copies deleted and files renamed to .lockbit.",
    ];
    let series = |shift: usize| -> String {
        let values: Vec<f64> = (0..200)
            .map(|i| {
                let base = 100.0 + 10.0 * ((i as f64) * std::f64::consts::TAU / 24.0).sin();
                if i == 120 + shift {
                    base * 3.0
                } else {
                    base
                }
            })
            .collect();
        json!({"values": values, "metric_type": "cpu_percent"}).to_string()
    };
    vec![
        Scenario {
            name: "classification",
            path: "/threat-intelligence/analyze",
            bodies: threats
                .iter()
                .map(|t| json!({ "text": t }).to_string())
                .collect(),
        },
        Scenario {
            name: "numeric",
            path: "/anomaly/detect",
            bodies: (0..4).map(series).collect(),
        },
    ]
}

fn run(
    port: u16,
    scenario: &Scenario,
    requests: usize,
    concurrency: usize,
    key: Option<&str>,
) -> Value {
    let headers: Vec<(&str, &str)> = key.map(|k| vec![("x-api-key", k)]).unwrap_or_default();
    // Warm-up, not measured.
    for body in &scenario.bodies {
        http_request(port, "POST", scenario.path, &headers, body);
    }
    let next = AtomicUsize::new(0);
    let samples: Mutex<Vec<(u16, bool, Duration)>> = Mutex::new(Vec::with_capacity(requests));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let body = &scenario.bodies[i % scenario.bodies.len()];
                let sample = http_exchange(port, "POST", scenario.path, &headers, body);
                samples.lock().unwrap().push(sample);
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let samples = samples.into_inner().unwrap();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for (status, _, _) in &samples {
        if !(200..300).contains(status) {
            let key = if *status == 0 {
                "connection".to_string()
            } else {
                status.to_string()
            };
            *errors.entry(key).or_default() += 1;
        }
    }
    let ok: Vec<Duration> = samples
        .iter()
        .filter(|(s, _, _)| (200..300).contains(s))
        .map(|(_, _, d)| *d)
        .collect();
    let all: Vec<Duration> = samples.iter().map(|(_, _, d)| *d).collect();
    let refused_without_retry_after = samples
        .iter()
        .filter(|(s, retry_after, _)| *s == 429 && !retry_after)
        .count();
    json!({
        "bench": "load",
        "route": scenario.name,
        "path": scenario.path,
        "concurrency": concurrency,
        "requests": samples.len(),
        "ok": ok.len(),
        "errors": samples.len() - ok.len(),
        "errors_by_status": errors,
        "seconds": seconds,
        "throughput_rps": samples.len() as f64 / seconds,
        "p50_ms": quantile_ms(&all, 0.50),
        "p95_ms": quantile_ms(&all, 0.95),
        "p99_ms": quantile_ms(&all, 0.99),
        "admitted_p95_ms": quantile_ms(&ok, 0.95),
        "refused_without_retry_after": refused_without_retry_after,
    })
}

fn main() {
    let url = arg_value("url").unwrap_or_else(|| {
        format!(
            "http://127.0.0.1:{}",
            arg_value("port").unwrap_or_else(|| "8080".into())
        )
    });
    let port = loopback_port(&url).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let requests: usize = arg_value("requests").map_or(1000, |v| v.parse().expect("--requests N"));
    let concurrency: Vec<usize> = arg_value("concurrency")
        .unwrap_or_else(|| "10,100".into())
        .split(',')
        .map(|c| c.trim().parse().expect("--concurrency N[,N...]"))
        .collect();
    let routes = arg_value("routes").unwrap_or_else(|| "classification,numeric".into());
    let key = arg_value("api-key").or_else(|| std::env::var("MESH_LOAD_API_KEY").ok());
    assert!(
        (1..=MAX_REQUESTS).contains(&requests),
        "--requests must be 1..={MAX_REQUESTS}"
    );
    for scenario in scenarios()
        .iter()
        .filter(|s| routes.split(',').any(|r| r == s.name))
    {
        for &c in &concurrency {
            assert!(
                (1..=MAX_CONCURRENCY).contains(&c),
                "--concurrency must be 1..={MAX_CONCURRENCY}"
            );
            emit(&run(port, scenario, requests, c, key.as_deref()));
        }
    }
}
