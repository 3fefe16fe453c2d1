//! Per-request latency of each language agent through HTTP.
//!
//! `cargo bench -p mesh-benches --bench agents_http -- [--requests N] [--json-out FILE]`
//! loads the server state as `msp-mesh serve` does (models, heads and data already prepared
//! by `msp-mesh prepare`), serves the real router on a loopback port and sends each agent
//! N sequential requests (after 3 warm-up requests) over HTTP/1.1, printing p50 / p95 / mean.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use mesh_benches::quantile_ms;
use mesh_core::ModelArgs;
use mesh_lambda::http::{router, AppState};
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
    mesh_benches::http_request(port, "POST", path, &[], body)
}

/// Skills of the allocation workload.
const SKILLS: [&str; 3] = ["network", "desktop", "security"];

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
        (
            "anomaly-detection",
            "/anomaly/detect",
            // A week of hourly CPU readings with one spike.
            json!({"metric_type": "cpu_percent", "values": (0..168).map(|t| if t == 100 { 97.0 } else { 40.0 + 10.0 * (t as f64 * std::f64::consts::PI / 12.0).sin() }).collect::<Vec<f64>>()}),
        ),
        (
            "revenue-forecasting",
            "/revenue/forecast",
            // Three years of monthly revenue with growth and a yearly season.
            json!({"history": (0..36).map(|t| 50_000.0 + 800.0 * t as f64 + 4_000.0 * (t as f64 * std::f64::consts::PI / 6.0).sin()).collect::<Vec<f64>>(), "horizon": 3}),
        ),
        (
            "client-health",
            "/client-health/predict",
            json!({"features": {"international_plan": "yes", "number_customer_service_calls": 4, "total_day_minutes": 250.0, "account_length": 90}}),
        ),
        (
            "resource-allocation",
            "/resource/optimize",
            json!({
                "tasks": (0..12).map(|i| json!({"id": format!("t{i}"), "skill": SKILLS[i % 3], "priority": 1 + i % 4, "estimated_hours": 1.0 + (i % 3) as f64, "deadline_hours": 4.0 + (i % 5) as f64})).collect::<Vec<_>>(),
                "technicians": [
                    {"id": "ana", "skills": ["network", "security"], "capacity_hours": 8},
                    {"id": "bo", "skills": ["desktop"], "capacity_hours": 8, "efficiency": 1.5},
                    {"id": "cy", "skills": ["desktop", "network"], "capacity_hours": 6}
                ]
            }),
        ),
        (
            "federated-learning",
            "/federated/train",
            json!({"participating_msps": 5, "privacy_epsilon": 1.0, "rounds": 10}),
        ),
    ]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let load_started = Instant::now();
    let state = runtime.block_on(AppState::load(
        &args.model,
        &mesh_core::ServiceArgs::ephemeral(),
        None,
    ))?;
    let load_s = load_started.elapsed().as_secs_f64();
    if let Some((name, reason)) = state
        .agents
        .failures()
        .into_iter()
        .chain(state.numeric.failures())
        .next()
    {
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
