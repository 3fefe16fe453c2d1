//! Helpers for the benchmarks in `benches/` (timing statistics and memory readings).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// The `q`-quantile (0..=1) of durations in milliseconds, interpolated linearly
/// between order statistics (numpy's default, as the PyTorch script computes it;
/// [`mesh_numeric::stats::quantile`]); NaN for no samples.
pub fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    let ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    mesh_numeric::stats::quantile(&ms, q).unwrap_or(f64::NAN)
}

/// Peak resident memory of this process in MiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The value after `--name` on the command line.
pub fn arg_value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    let flag = format!("--{name}");
    args.iter()
        .position(|a| *a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Prints `line` (one JSON object) and appends it to the `--jsonl` file when one is given.
pub fn emit(line: &serde_json::Value) {
    println!("{line}");
    if let Some(path) = arg_value("jsonl") {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
        writeln!(file, "{line}").unwrap_or_else(|e| panic!("write {path}: {e}"));
    }
}

/// Sends one HTTP/1.1 request on a new connection (as Apache Bench does without `-k`) to a
/// loopback port; returns the status (0 when the exchange failed) and the time to the last
/// byte of the answer.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Duration) {
    let (status, _, took) = http_exchange(port, method, path, headers, body);
    (status, took)
}

/// [`http_request`], also telling whether the answer carried a `retry-after` header.
pub fn http_exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, bool, Duration) {
    let started = Instant::now();
    let exchange = || -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    };
    let response = exchange()
        .ok()
        .map(|r| String::from_utf8_lossy(&r).into_owned());
    let took = started.elapsed();
    let status = response
        .as_deref()
        .and_then(|r| r.split_whitespace().nth(1).and_then(|s| s.parse().ok()))
        .unwrap_or(0);
    let retry_after = response.as_deref().is_some_and(|r| {
        r.split("\r\n\r\n")
            .next()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("\r\nretry-after:")
    });
    (status, retry_after, took)
}

/// The port of a loopback URL (`http://127.0.0.1:8080`, `http://localhost:8080`, `[::1]`).
pub fn loopback_port(url: &str) -> Result<u16, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or("");
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| format!("`{url}` has no port"))?;
    let loopback = host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "`{url}` is not a loopback address; the load test only runs against this machine"
        ));
    }
    port.parse().map_err(|e| format!("port of `{url}`: {e}"))
}

/// Times `run` on `items` cut into consecutive batches of 1, 8 and 32 (file order), `rounds`
/// passes each, and prints a row per batch size. Returns the rows (`batch_size`,
/// `batches_timed`, `sentences_per_s`, `tokens_per_s` from `total_tokens`, `p50_ms`, `p99_ms`
/// per batch, and every call's `latencies_ms`: the keys the Python engines' scripts write) and
/// the batch-1 `{p50_ms, p99_ms}`.
pub fn time_batches<T>(
    items: &[T],
    total_tokens: usize,
    rounds: usize,
    mut run: impl FnMut(&[T]),
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut rows = Vec::new();
    let mut single = serde_json::Value::Null;
    println!(
        "{:>5} {:>12} {:>12} {:>10} {:>10}",
        "batch", "sentences/s", "tokens/s", "p50 ms", "p99 ms"
    );
    for batch in [1usize, 8, 32] {
        let mut latencies: Vec<Duration> = Vec::new();
        let start = Instant::now();
        for _ in 0..rounds {
            for chunk in items.chunks(batch) {
                let t = Instant::now();
                run(chunk);
                latencies.push(t.elapsed());
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let sps = (items.len() * rounds) as f64 / secs;
        let tps = (total_tokens * rounds) as f64 / secs;
        let (p50, p99) = (quantile_ms(&latencies, 0.5), quantile_ms(&latencies, 0.99));
        println!("{batch:>5} {sps:>12.1} {tps:>12.0} {p50:>10.2} {p99:>10.2}");
        rows.push(serde_json::json!({
            "batch_size": batch, "batches_timed": latencies.len(), "sentences_per_s": sps,
            "tokens_per_s": tps, "p50_ms": p50, "p99_ms": p99,
            "latencies_ms": latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect::<Vec<_>>(),
        }));
        if batch == 1 {
            single = serde_json::json!({"p50_ms": p50, "p99_ms": p99});
        }
    }
    (rows, single)
}

/// The CPU's f32 FMA throughput on `threads` threads, in GFLOP/s: each thread runs 12
/// independent 8-lane FMA chains (enough to hide the FMA latency on the two FMA pipes of a
/// Zen or Skylake core), all started together; the best of three runs. The ceiling for any
/// 256-bit FMA matrix kernel here, measured rather than taken from a nominal clock (this VM's
/// cores run above the clock they report). `None` without AVX2 and FMA.
pub fn fma_peak_gflops(threads: usize) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            return None;
        }
        const ITERS: u64 = 40_000_000;
        let threads = threads.max(1);
        let best = (0..3)
            .map(|_| {
                let barrier = std::sync::Barrier::new(threads + 1);
                std::thread::scope(|scope| {
                    for _ in 0..threads {
                        scope.spawn(|| {
                            barrier.wait();
                            // SAFETY: AVX2 and FMA were detected above.
                            std::hint::black_box(unsafe { fma_chains(ITERS) });
                        });
                    }
                    barrier.wait();
                    let start = Instant::now();
                    // The scope joins every thread before it returns.
                    start
                })
                .elapsed()
                .as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        Some((threads as u64 * ITERS * 12 * 8 * 2) as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        None
    }
}

/// 12 independent chains of `iters` 8-lane FMAs; returns their sum so none is optimised away.
///
/// # Safety
/// The CPU has AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn fma_chains(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    let mut acc = [_mm256_setzero_ps(); 12];
    for _ in 0..iters {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let sum = acc
        .iter()
        .fold(_mm256_setzero_ps(), |s, &x| _mm256_add_ps(s, x));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), sum);
    lanes.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets() {
        assert_eq!(loopback_port("http://127.0.0.1:8080"), Ok(8080));
        assert_eq!(loopback_port("http://localhost:9000/"), Ok(9000));
        assert!(loopback_port("http://10.0.0.5:8080").is_err());
        assert!(loopback_port("http://example.com:80").is_err());
    }

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        // numpy.percentile(range(1, 101), [50, 99]) == [50.5, 99.01]
        assert!((quantile_ms(&s, 0.5) - 50.5).abs() < 1e-9);
        assert!((quantile_ms(&s, 0.99) - 99.01).abs() < 1e-9);
        assert_eq!(quantile_ms(&s[..1], 0.99), 1.0);
    }
}
