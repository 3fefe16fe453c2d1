//! Scale-out of `msp-mesh score` over AWS Lambda. The input object on S3 is cut into byte ranges
//! (shards); each shard is one invocation of a function running `bootstrap` with
//! `MESH_MODE=score`, which reads its range with a ranged GET (a record belongs to the shard
//! holding its first byte), scores it like `msp-mesh score` and writes
//! `<output prefix>/part-NNNNN.jsonl`. The driver (`msp-mesh score --fan-out-function`) keeps at
//! most `concurrency` invocations in flight, retries a failed shard with backoff, and records
//! every finished shard in `<output prefix>/manifest.json`; a rerun does only the shards not in
//! it. The parts, in index order, are the answers in input order.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use mesh_agents::AgentKind;
use mesh_inference::store::S3Store;
use serde::{Deserialize, Serialize};

use mesh_core::Mesh;

use crate::batch::{open_s3_object as object, Format, ScoreOptions};

/// Name of the manifest under the output prefix.
pub const MANIFEST: &str = "manifest.json";
pub use crate::batch::DEFAULT_SHARD_BYTES;
/// Invocations of one shard before the run gives up on it.
pub const MAX_ATTEMPTS: u32 = 3;
/// Wait before the first retry (doubled after each).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);

/// One shard's work: the event of a `MESH_MODE=score` invocation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTask {
    /// Agent name (kebab-case).
    pub agent: String,
    /// `s3://bucket/key` of the whole input (JSON lines).
    pub input: String,
    pub index: usize,
    /// The byte range `[start, end)` whose records this shard scores.
    pub start: u64,
    pub end: u64,
    /// `s3://bucket/key` of the part to write.
    pub output: String,
}

/// A finished shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardDone {
    pub index: usize,
    pub start: u64,
    pub end: u64,
    pub records: u64,
    pub errors: u64,
    pub output: String,
    /// Time the function spent on the shard.
    pub seconds: f64,
}

/// What a fan-out run has finished, kept under the output prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub input: String,
    pub agent: String,
    /// The input's size and the shard size the shards were cut with.
    pub input_bytes: u64,
    pub shard_bytes: u64,
    pub shards: usize,
    /// Finished shards, by index.
    pub finished: Vec<ShardDone>,
}

/// What a fan-out run did.
#[derive(Debug, Clone, Default)]
pub struct FanOutSummary {
    pub shards: usize,
    /// Shards an earlier run had finished.
    pub reused: usize,
    /// Shards invoked again after a failure.
    pub retries: u64,
    pub records: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for FanOutSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} shards ({} finished by an earlier run, {} retries): {} records ({} errors) in {:.1}s, {:.1} records/s",
            self.shards,
            self.reused,
            self.retries,
            self.records,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
        )
    }
}

/// The byte ranges of `size` bytes cut every `shard_bytes`.
pub fn plan(size: u64, shard_bytes: u64) -> Vec<(u64, u64)> {
    let step = shard_bytes.max(1);
    (0..size.div_ceil(step))
        .map(|i| (i * step, ((i + 1) * step).min(size)))
        .collect()
}

/// Runs one shard (`bootstrap`, `MESH_MODE=score`): extracts its records into `spool`, scores
/// them and writes the part.
pub async fn run_shard(
    state: Arc<Mesh>,
    task: ShardTask,
    spool: &Path,
) -> anyhow::Result<ShardDone> {
    let started = Instant::now();
    let agent = mesh_core::agents::parse_agent(&task.agent)
        .with_context(|| format!("unknown agent `{}`", task.agent))?;
    // A folder of this invocation's own: nothing of an earlier shard is picked up.
    let spool = spool.join(format!(
        "shard-{:05}-{}",
        task.index,
        mesh_core::store::new_result_id()
    ));
    std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
    let result = async {
        let (store, key) = object(&task.input, &spool).await?;
        let local = spool.join("records.jsonl");
        let body = store.read_from(&key, task.start.saturating_sub(1)).await?;
        extract_range(body, task.start, task.end, &local).await?;
        let options = ScoreOptions {
            agent,
            input: local.display().to_string(),
            output: task.output.clone(),
            input_format: Format::Jsonl,
            output_format: Format::Jsonl,
            resume: false,
            window: crate::batch::DEFAULT_WINDOW,
            spool_dir: spool.clone(),
        };
        crate::batch::run(state, &options, &indicatif::ProgressBar::hidden()).await
    }
    .await;
    std::fs::remove_dir_all(&spool).ok();
    let summary = result?;
    Ok(ShardDone {
        index: task.index,
        start: task.start,
        end: task.end,
        records: summary.records,
        errors: summary.errors,
        output: task.output,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Writes the lines whose first byte lies in `[start, end)` from `body` (the object from byte
/// `start - 1`, or 0) to `target`.
async fn extract_range(
    mut body: mesh_inference::store::ByteStream,
    start: u64,
    end: u64,
    target: &Path,
) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(target).with_context(|| format!("creating {}", target.display()))?,
    );
    let mut position = start.saturating_sub(1); // of the next byte
    let mut skipping = start > 0; // the line before the range, or the end of it
    let mut line_start = position;
    let mut last = b'\n';
    'read: while let Some(chunk) = body.try_next().await.context("reading the input range")? {
        let mut from = 0;
        for (i, &byte) in chunk.iter().enumerate() {
            let at = position + i as u64;
            if skipping {
                if byte == b'\n' {
                    skipping = false;
                    line_start = at + 1;
                    from = i + 1;
                }
                continue;
            }
            if at == line_start && line_start >= end {
                out.write_all(&chunk[from..i])?;
                break 'read;
            }
            if byte == b'\n' {
                line_start = at + 1;
            }
            last = byte;
        }
        if !skipping {
            out.write_all(&chunk[from..])?;
        }
        position += chunk.len() as u64;
    }
    if last != b'\n' {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads the manifest under `prefix`, or starts one; refuses one of another input or shard size.
async fn load_manifest(store: &S3Store, key: &str, fresh: Manifest) -> anyhow::Result<Manifest> {
    let Some(bytes) = store.get_bytes(key).await? else {
        return Ok(fresh);
    };
    let existing: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a fan-out manifest", store.location(key)))?;
    anyhow::ensure!(
        existing.input == fresh.input
            && existing.agent == fresh.agent
            && existing.input_bytes == fresh.input_bytes
            && existing.shard_bytes == fresh.shard_bytes,
        "{} belongs to another run ({} with {}, {} bytes in shards of {}): use another output prefix",
        store.location(key),
        existing.input,
        existing.agent,
        existing.input_bytes,
        existing.shard_bytes
    );
    Ok(existing)
}

/// Invokes `function` with one shard, retrying with backoff; returns the shard and the
/// number of retries.
async fn invoke_shard(
    client: &aws_sdk_lambda::Client,
    function: &str,
    task: &ShardTask,
) -> (Result<ShardDone, String>, u64) {
    let mut backoff = FIRST_BACKOFF;
    let mut retries = 0;
    loop {
        let outcome = invoke_once(client, function, task).await;
        match outcome {
            Ok(done) => return (Ok(done), retries),
            Err(e) if retries + 1 >= u64::from(MAX_ATTEMPTS) => {
                return (Err(format!("shard {}: {e}", task.index)), retries)
            }
            Err(e) => {
                tracing::warn!(shard = task.index, error = %e, "shard failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff *= 2;
                retries += 1;
            }
        }
    }
}

async fn invoke_once(
    client: &aws_sdk_lambda::Client,
    function: &str,
    task: &ShardTask,
) -> Result<ShardDone, String> {
    let payload = serde_json::to_vec(task).map_err(|e| e.to_string())?;
    let output = client
        .invoke()
        .function_name(function)
        .payload(aws_sdk_lambda::primitives::Blob::new(payload))
        .send()
        .await
        .map_err(|e| aws_sdk_lambda::error::DisplayErrorContext(e).to_string())?;
    let body = output
        .payload()
        .map(|p| p.as_ref().to_vec())
        .unwrap_or_default();
    if let Some(kind) = output.function_error() {
        return Err(format!("{kind}: {}", String::from_utf8_lossy(&body)));
    }
    serde_json::from_slice(&body).map_err(|e| {
        format!(
            "the function's answer is not a finished shard ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    })
}

/// What a fan-out run scores, and how.
#[derive(Debug, Clone)]
pub struct FanOutOptions {
    pub function: String,
    pub agent: AgentKind,
    /// `s3://bucket/key` (JSON lines).
    pub input: String,
    /// `s3://bucket/prefix` of the parts and the manifest.
    pub output: String,
    pub shard_bytes: u64,
    pub concurrency: usize,
    pub spool_dir: std::path::PathBuf,
}

/// The driver: runs every shard not in the manifest on `function`.
pub async fn fan_out(
    config: &aws_config::SdkConfig,
    options: &FanOutOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<FanOutSummary> {
    let started = Instant::now();
    let (input_store, input_key) = object(&options.input, &options.spool_dir).await?;
    let (output_store, output_prefix) = object(&options.output, &options.spool_dir).await?;
    let input_bytes = input_store.size(&input_key).await?;
    let shards = plan(input_bytes, options.shard_bytes);
    let manifest_key = format!("{}/{MANIFEST}", output_prefix.trim_end_matches('/'));
    let mut manifest = load_manifest(
        &output_store,
        &manifest_key,
        Manifest {
            input: options.input.clone(),
            agent: options.agent.cli_name().to_string(),
            input_bytes,
            shard_bytes: options.shard_bytes,
            shards: shards.len(),
            finished: vec![],
        },
    )
    .await?;
    let reused = manifest.finished.len();
    let todo: Vec<ShardTask> = shards
        .iter()
        .enumerate()
        .filter(|(i, _)| !manifest.finished.iter().any(|d| d.index == *i))
        .map(|(index, &(start, end))| ShardTask {
            agent: options.agent.cli_name().to_string(),
            input: options.input.clone(),
            index,
            start,
            end,
            output: output_store.location(&format!(
                "{}/part-{index:05}.jsonl",
                output_prefix.trim_end_matches('/')
            )),
        })
        .collect();
    progress.set_length(shards.len() as u64);
    progress.set_position(reused as u64);
    progress.set_style(crate::progress::shards_style());
    progress.set_message(format!(
        "scoring with {} on {}",
        options.agent.cli_name(),
        options.function
    ));

    let client = aws_sdk_lambda::Client::new(config);
    let mut summary = FanOutSummary {
        shards: shards.len(),
        reused,
        ..Default::default()
    };
    let mut failures = vec![];
    let mut running = futures_util::stream::iter(todo.iter())
        .map(|task| invoke_shard(&client, &options.function, task))
        .buffer_unordered(options.concurrency.max(1));
    while let Some((outcome, retries)) = running.next().await {
        summary.retries += retries;
        match outcome {
            Ok(done) => {
                manifest.finished.push(done);
                manifest.finished.sort_by_key(|d| d.index);
                output_store
                    .put_bytes(&manifest_key, serde_json::to_vec_pretty(&manifest)?)
                    .await?;
                progress.inc(1);
            }
            Err(e) => failures.push(e),
        }
    }
    for done in &manifest.finished {
        summary.records += done.records;
        summary.errors += done.errors;
    }
    summary.elapsed = started.elapsed();
    anyhow::ensure!(
        failures.is_empty(),
        "{} of {} shards failed after {MAX_ATTEMPTS} attempts (the manifest keeps the finished ones; run again to finish): {}",
        failures.len(),
        shards.len(),
        failures.join("; ")
    );
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_input_once() {
        assert_eq!(plan(10, 4), [(0, 4), (4, 8), (8, 10)]);
        assert_eq!(plan(8, 4), [(0, 4), (4, 8)]);
        assert!(plan(0, 4).is_empty());
    }

    async fn extracted(text: &str, start: u64, end: u64) -> String {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shard");
        let from = start.saturating_sub(1) as usize;
        let body = mesh_inference::store::ByteStream::from(text.as_bytes()[from..].to_vec());
        extract_range(body, start, end, &target).await.unwrap();
        std::fs::read_to_string(target).unwrap()
    }

    #[tokio::test]
    async fn every_line_lands_in_exactly_one_shard() {
        let text = "aa\nbbbb\n\ncc\nd";
        for size in 1..=16u64 {
            let mut joined = String::new();
            for (start, end) in plan(text.len() as u64, size) {
                joined.push_str(&extracted(text, start, end).await);
            }
            assert_eq!(joined, format!("{text}\n"), "shard size {size}");
        }
    }
}
