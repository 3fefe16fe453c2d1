//! Per-request latency of each language agent through HTTP.
//!
//! `cargo bench -p mesh-benches --bench agents_http -- [--requests N] [--json-out FILE]`
//! loads the server state as `msp-mesh serve` does (models, heads and data already prepared
//! by `msp-mesh prepare`), serves the real router on a loopback port and sends each agent
//! N sequential requests (after 3 warm-up requests) over HTTP/1.1, printing p50 / p95 / mean.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use mesh_benches::quantile_ms;
use mesh_lambda::{router, AppState, ModelArgs};
use serde_json::{json, Value};

#[derive(Parser)]
struct Args {
    /// Measured requests per agent.
    #[arg(long, default_value_t = 30)]
    requests: usize,
    /// Write the results as JSON here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Ignored (cargo bench passes it).
    #[arg(long, hide = true)]
    bench: bool,
}

fn post(port: u16, path: &str, body: &str) -> (u16, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read");
    let elapsed = started.elapsed();
    let status = String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, elapsed)
}

/// Representative request bodies, one per agent.
fn workloads() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "threat-intelligence",
            "/threat-intelligence/analyze",
            json!({"text": "Our SOC saw PowerShell download a payload from hxxp://cdn-update[.]top/a.ps1 and encrypt shares on FS01; the ransom note demands bitcoin. Hash 44d88612fea8a8f36de82e1278abb02f, C2 at 45.137.21[.]9."}),
        ),
        (
            "market-intelligence",
            "/market-intelligence/analyze",
            json!({"query": "Acme Networks Inc. reported revenue up 12% to $4.5 million in Q3 2025. Customers love the new dashboard. However the outage last week was a disaster for clients.", "industry_segment": "managed security"}),
        ),
        (
            "nlp-query",
            "/nlp-query/ask",
            json!({"query": "How can we stop credential dumping from LSASS memory?"}),
        ),
        (
            "partner-matching",
            "/collaboration/match",
            json!({"requirements": "Looking for a partner with HIPAA compliance and incident response experience for a hospital group in the US", "top_k": 5}),
        ),
        (
            "compliance",
            "/compliance/check",
            json!({"framework": "nist-csf-2.0", "policy_text": "We keep an inventory of all hardware and software assets. Multi-factor authentication is required for remote access. Backups are taken daily and restores are tested monthly. Security awareness training is mandatory for all staff every year. Incidents are reported to the security team within one hour and handled with a documented response plan."}),
        ),
    ]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let load_started = Instant::now();
    let state = runtime.block_on(AppState::load(&args.model))?;
    let load_s = load_started.elapsed().as_secs_f64();
    if let Some((name, reason)) = state.agents.failures().first() {
        anyhow::bail!("{name} is not loaded: {reason} (run `msp-mesh prepare`)");
    }
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    runtime.spawn(async move { axum::serve(listener, router(state)).await });

    println!(
        "server state loaded in {load_s:.1}s; {} requests per agent, sequential",
        args.requests
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9}",
        "agent", "p50 ms", "p95 ms", "mean ms"
    );
    let mut results = Vec::new();
    for (name, path, body) in workloads() {
        let body = body.to_string();
        for _ in 0..3 {
            let (status, _) = post(port, path, &body);
            anyhow::ensure!(status == 200, "{path} answered {status}");
        }
        let samples: Vec<Duration> = (0..args.requests)
            .map(|_| post(port, path, &body).1)
            .collect();
        let mean =
            samples.iter().map(Duration::as_secs_f64).sum::<f64>() / samples.len() as f64 * 1e3;
        let (p50, p95) = (quantile_ms(&samples, 0.5), quantile_ms(&samples, 0.95));
        println!("{name:<22} {p50:>9.1} {p95:>9.1} {mean:>9.1}");
        results.push(json!({"agent": name, "route": path, "p50_ms": p50, "p95_ms": p95, "mean_ms": mean, "requests": args.requests}));
    }
    if let Some(path) = args.json_out {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&json!({"load_s": load_s, "results": results}))?,
        )?;
    }
    Ok(())
}
