//! Helpers for the benchmarks in `benches/` (timing statistics and memory readings).

use std::time::Duration;

/// The `q`-quantile (0..=1) of durations in milliseconds, interpolated linearly
/// between order statistics (numpy's default, as the PyTorch script computes it).
pub fn quantile_ms(samples: &[Duration], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let k = (ms.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (lo, hi) = (k.floor() as usize, k.ceil() as usize);
    ms[lo] + (ms[hi] - ms[lo]) * (k - lo as f64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        // numpy.percentile(range(1, 101), [50, 99]) == [50.5, 99.01]
        assert!((quantile_ms(&s, 0.5) - 50.5).abs() < 1e-9);
        assert!((quantile_ms(&s, 0.99) - 99.01).abs() < 1e-9);
        assert_eq!(quantile_ms(&s[..1], 0.99), 1.0);
    }
}
