//! `msp-mesh score` at scale: records from JSON lines or CSV (a local file, standard input or
//! `s3://bucket/key`), scored concurrently (the backend batches their texts), answers written in
//! input order to JSON lines or CSV (a local file, standard output or `s3://`).
//!
//! - Memory is bounded: a reader thread streams the input through a bounded channel, and at most
//!   [`ScoreOptions::window`] records are in flight.
//! - Resumable: answers are written one line per record in input order, so after a kill the
//!   complete lines of the output say how many records are done. `--resume` truncates a torn
//!   last line, skips that many input records and appends: every record is answered exactly
//!   once. It refuses an input whose size or sha256 differs from the one the output was
//!   started from (recorded beside it while it is written). A line that is not UTF-8 is that
//!   record's error answer. (An `s3://` output is written to a local spool file first, kept across runs for
//!   resuming, and uploaded at the end.)
//! - CSV: the header names the request fields; a cell that parses as JSON (a number, `true`,
//!   `[1,2]`, `{...}`) is that value, anything else a string; an `id` column is passed through.
//!   CSV answers have the columns `id`, `error` and `response` (the agent's JSON answer).
//! - Parquet ([`columnar`]): each row is a request; answers (the CSV columns) are
//!   appended to a JSON-lines spool, converted when the run completes.

use std::collections::VecDeque;
use std::io::{BufRead, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use mesh_agents::AgentKind;
use mesh_core::Mesh;
use mesh_inference::aws::S3Uri;
#[cfg(feature = "aws")]
use mesh_inference::store::S3Store;
use serde_json::{json, Value};

pub mod columnar;

/// Records in flight at once by default.
pub const DEFAULT_WINDOW: usize = 32;
/// Default input bytes per shard of a Lambda fan-out (`msp-mesh score --fan-out-function`).
pub const DEFAULT_SHARD_BYTES: u64 = 16 << 20;

/// A file format of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// A header row, then one record per row.
    Csv,
    /// Apache Parquet: a row per record (input), or the CSV answer's columns (output).
    Parquet,
}

impl Format {
    /// `explicit`, else by the file name's extension (`.csv`, else JSON lines).
    pub fn resolve(explicit: Option<Format>, location: &str) -> Format {
        explicit.unwrap_or_else(|| {
            let lower = location.to_ascii_lowercase();
            if lower.ends_with(".csv") {
                Format::Csv
            } else if lower.ends_with(".parquet") {
                Format::Parquet
            } else {
                Format::Jsonl
            }
        })
    }
}

/// What to score and where.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub agent: AgentKind,
    /// A path, `-` (standard input) or `s3://bucket/key`.
    pub input: String,
    /// A path, `-` (standard output) or `s3://bucket/key`.
    pub output: String,
    pub input_format: Format,
    pub output_format: Format,
    /// Continue an output a killed run left.
    pub resume: bool,
    /// Records in flight at once.
    pub window: usize,
    /// Where `s3://` inputs and outputs are spooled.
    pub spool_dir: PathBuf,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BatchSummary {
    /// Records answered by this run.
    pub records: u64,
    /// Of which answered with an error.
    pub errors: u64,
    /// Records an earlier run had answered (skipped on `--resume`).
    pub resumed: u64,
    pub elapsed: Duration,
    /// Time from a record's start to its answer: median and 95th percentile.
    pub p50: Duration,
    pub p95: Duration,
    /// What the shared encoder did during the run (texts embedded, forward-pass time).
    pub encoder: mesh_inference::backend::BackendStats,
}

impl BatchSummary {
    /// Records answered per second by this run.
    pub fn throughput(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl std::fmt::Display for BatchSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scored {} records ({} errors) in {:.1}s: {:.1} records/s, p50 {:.1} ms, p95 {:.1} ms per record",
            self.records,
            self.errors,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.p50.as_secs_f64() * 1e3,
            self.p95.as_secs_f64() * 1e3,
        )?;
        if self.resumed > 0 {
            write!(f, "; {} answered by an earlier run", self.resumed)?;
        }
        let e = &self.encoder;
        if e.texts > 0 {
            let busy = e.busy.as_secs_f64();
            write!(
                f,
                "\nencoder: {} texts ({} tokens) in {} batches, {:.1}s in forward passes ({:.1} texts/s while busy); busy {:.0}% of the run",
                e.texts,
                e.tokens,
                e.batches,
                busy,
                e.texts as f64 / busy.max(1e-9),
                100.0 * busy / self.elapsed.as_secs_f64().max(1e-9)
            )?;
        }
        Ok(())
    }
}

/// One input record: its JSON body, or why it is not one.
type RawRecord = Result<Value, String>;

/// The S3 store of a build without AWS: it has no value, since no `s3://` object can be opened.
#[cfg(not(feature = "aws"))]
enum S3Store {}

#[cfg(not(feature = "aws"))]
impl S3Store {
    async fn fetch_object(&self, _: &str, _: &Path, _: Option<&str>) -> anyhow::Result<()> {
        match *self {}
    }

    async fn put_file(&self, _: &str, _: &Path) -> anyhow::Result<()> {
        match *self {}
    }
}

/// `s3://bucket/key` as a store on the bucket (downloads spooled in `spool`) and the key.
#[cfg(feature = "aws")]
pub async fn open_s3_object(uri: &str, spool: &Path) -> anyhow::Result<(S3Store, String)> {
    let uri = S3Uri::parse_object(uri)?;
    Ok((
        S3Store::from_env(uri.bucket, String::new(), spool.to_path_buf()).await,
        uri.key,
    ))
}

/// [`open_s3_object`] when `uri` is an `s3://` location, else `None`.
async fn s3_object(uri: &str, spool: &Path) -> anyhow::Result<Option<(S3Store, String)>> {
    if !S3Uri::is_s3(uri) {
        return Ok(None);
    }
    #[cfg(not(feature = "aws"))]
    return Err(mesh_core::needs_aws_build(&format!("`{uri}` ({spool:?})")));
    #[cfg(feature = "aws")]
    open_s3_object(uri, spool).await.map(Some)
}

/// A spool file name for an S3 object (stable across runs, so a resume finds it).
fn spool_path(spool: &Path, uri: &str, suffix: &str) -> PathBuf {
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(uri.as_bytes()));
    spool.join(format!("{}-{suffix}", &digest[..16]))
}

/// Scores `options.input` into `options.output`.
pub async fn run(
    state: Arc<Mesh>,
    options: &ScoreOptions,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<BatchSummary> {
    std::fs::create_dir_all(&options.spool_dir)
        .with_context(|| format!("creating {}", options.spool_dir.display()))?;
    // Input: a local file (or stdin); an S3 object is downloaded to the spool first.
    let input_path = match s3_object(&options.input, &options.spool_dir).await? {
        Some((store, key)) => {
            let target = spool_path(&options.spool_dir, &options.input, "input");
            let _ = std::fs::remove_file(&target);
            progress.set_message(format!("downloading {}", options.input));
            store.fetch_object(&key, &target, None).await?;
            Some(target)
        }
        None if options.input == "-" => None,
        None => Some(PathBuf::from(&options.input)),
    };
    let output_s3 = s3_object(&options.output, &options.spool_dir).await?;
    let parquet = options.output_format == Format::Parquet;
    // The finished output on this machine (none for stdout).
    let final_path = match &output_s3 {
        Some(_) => Some(spool_path(&options.spool_dir, &options.output, "output")),
        None if options.output == "-" => None,
        None => Some(PathBuf::from(&options.output)),
    };
    anyhow::ensure!(
        !(parquet && final_path.is_none()),
        "Parquet output needs a file or s3:// location, not standard output"
    );
    // Where answers are appended: a spool for S3 and Parquet outputs, else the output itself.
    let append_path = match (&final_path, parquet || output_s3.is_some()) {
        (Some(path), true) => Some(path.with_file_name(format!(
            "{}.part",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))),
        (path, false) => path.clone(),
        (None, true) => None,
    };
    let append_format = if parquet {
        Format::Jsonl
    } else {
        options.output_format
    };
    // What the output is scored from, kept beside it: `--resume` refuses a changed input.
    let record_of_input = match (&append_path, &input_path) {
        (Some(output), input) => {
            progress.set_message("checking the input");
            let fingerprint = match input.clone() {
                Some(path) => Some(
                    tokio::task::spawn_blocking(move || InputFingerprint::of(&path))
                        .await
                        .context("fingerprinting the input stopped")??,
                ),
                None => None,
            };
            Some(check_input(output, fingerprint, options.resume)?)
        }
        (None, _) => None,
    };
    let (writer, resumed) = open_output(append_path.as_deref(), append_format, options.resume)?;
    let total_bytes = match &input_path {
        Some(p) => Some(
            std::fs::metadata(p)
                .with_context(|| format!("reading {}", p.display()))?
                .len(),
        ),
        None => None,
    };
    if let Some(total) = total_bytes {
        progress.set_length(total);
        progress.set_style(crate::progress::bytes_style());
    }
    progress.set_message(format!("scoring with {}", options.agent.cli_name()));

    let (sender, receiver) = tokio::sync::mpsc::channel::<RawRecord>(options.window * 4);
    let reader_progress = progress.clone();
    let format = options.input_format;
    let reader = tokio::task::spawn_blocking(move || {
        read_records(
            input_path.as_deref(),
            format,
            resumed,
            &sender,
            &reader_progress,
        )
    });
    let encoder = state.embedder.clone();
    let before = encoder.as_ref().map(|e| e.stats()).unwrap_or_default();
    let summary = score_records(state, options, receiver, writer, append_format, resumed).await;
    let read = reader.await.context("the input reader stopped")?;
    let mut summary = summary?;
    let after = encoder.as_ref().map(|e| e.stats()).unwrap_or_default();
    summary.encoder = mesh_inference::backend::BackendStats {
        texts: after.texts - before.texts,
        tokens: after.tokens - before.tokens,
        batches: after.batches - before.batches,
        busy: after.busy.saturating_sub(before.busy),
        abandoned: after.abandoned - before.abandoned,
    };
    read?;
    if let Some(record) = record_of_input {
        std::fs::remove_file(record).ok(); // the output is complete
    }
    let (Some(final_path), Some(append_path)) = (final_path, append_path) else {
        return Ok(summary);
    };
    if parquet {
        progress.set_message(format!("writing {}", final_path.display()));
        let (from, to) = (append_path.clone(), final_path.clone());
        tokio::task::spawn_blocking(move || columnar::write_answers(&from, &to))
            .await
            .context("the Parquet writer stopped")??;
        std::fs::remove_file(&append_path).ok();
    } else if append_path != final_path {
        std::fs::rename(&append_path, &final_path)
            .with_context(|| format!("moving {} into place", append_path.display()))?;
    }
    if let Some((store, key)) = output_s3 {
        progress.set_message(format!("uploading {}", options.output));
        store.put_file(&key, &final_path).await?;
        std::fs::remove_file(&final_path).ok();
    }
    Ok(summary)
}

/// What an output is scored from: the input's size and sha256, kept beside the output while
/// it is being written (`<output>.input.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct InputFingerprint {
    bytes: u64,
    sha256: String,
}

impl InputFingerprint {
    fn of(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        let sha256 = mesh_models::sha256_file(path)
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self { bytes, sha256 })
    }
}

/// Checks, for `--resume` of an output that holds answers, that the input is the one it was
/// scored from; for a new output, records the input. Returns the record's path.
fn check_input(
    output: &Path,
    input: Option<InputFingerprint>,
    resume: bool,
) -> anyhow::Result<PathBuf> {
    let record = output.with_file_name(format!(
        "{}.input.json",
        output.file_name().unwrap_or_default().to_string_lossy()
    ));
    let holds_answers = output.metadata().map(|m| m.len() > 0).unwrap_or(false);
    if holds_answers && !resume {
        return Ok(record); // refused by `open_output`; the record stays that of its input
    }
    if holds_answers {
        let input = input.context(
            "--resume needs the input as a file or s3:// object: standard input cannot be checked for changes",
        )?;
        let text = std::fs::read_to_string(&record).with_context(|| {
            format!(
                "{} holds no record of the input it was scored from ({} is missing), so --resume cannot check the input is unchanged; remove the output to score afresh",
                output.display(),
                record.display()
            )
        })?;
        let scored_from: InputFingerprint = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an input record", record.display()))?;
        anyhow::ensure!(
            scored_from == input,
            "the input changed since {} was started ({} bytes, sha256 {} then; {} bytes, sha256 {} now): --resume would mix answers of two inputs; remove the output to score afresh",
            output.display(),
            scored_from.bytes,
            scored_from.sha256,
            input.bytes,
            input.sha256
        );
        return Ok(record);
    }
    if let Some(input) = input {
        if let Some(parent) = record.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let json = serde_json::to_vec(&input)?;
        mesh_models::write_durably(&record, &json)
            .with_context(|| format!("writing {}", record.display()))?;
    }
    Ok(record)
}

/// Opens the output: a new file (or stdout), or with `--resume` the existing one, truncated
/// after its last complete line; returns the writer and how many records it holds already.
fn open_output(
    path: Option<&Path>,
    format: Format,
    resume: bool,
) -> anyhow::Result<(Box<dyn Write + Send>, u64)> {
    let header = format == Format::Csv;
    let Some(path) = path else {
        anyhow::ensure!(
            !resume,
            "--resume needs an output file, not standard output"
        );
        let mut out: Box<dyn Write + Send> = Box::new(std::io::BufWriter::new(std::io::stdout()));
        if header {
            out.write_all(CSV_HEADER.as_bytes())?;
        }
        return Ok((out, 0));
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let exists = path.metadata().map(|m| m.len() > 0).unwrap_or(false);
    if exists && !resume {
        anyhow::bail!(
            "{} exists: pass --resume to continue it, or remove it",
            path.display()
        );
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let (lines, keep) = complete_lines(&mut file)?;
    file.set_len(keep)?;
    file.seek(std::io::SeekFrom::End(0))?;
    let mut done = lines;
    if header {
        if lines == 0 {
            file.write_all(CSV_HEADER.as_bytes())?;
        } else {
            done -= 1;
        }
    }
    Ok((Box::new(std::io::BufWriter::new(file)), done))
}

/// The number of complete (newline-ended) lines of a file and the byte length they span.
fn complete_lines(file: &mut std::fs::File) -> std::io::Result<(u64, u64)> {
    file.seek(std::io::SeekFrom::Start(0))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &mut *file);
    let (mut lines, mut position, mut keep) = (0u64, 0u64, 0u64);
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((lines, keep));
        }
        for (i, byte) in buffer.iter().enumerate() {
            if *byte == b'\n' {
                lines += 1;
                keep = position + i as u64 + 1;
            }
        }
        let n = buffer.len();
        position += n as u64;
        reader.consume(n);
    }
}

const CSV_HEADER: &str = "id,error,response\n";

/// Streams records of the file at `path` (standard input when `None`) into `sender`, skipping
/// the first `skip`; advances `progress` by bytes read.
fn read_records(
    path: Option<&Path>,
    format: Format,
    skip: u64,
    sender: &tokio::sync::mpsc::Sender<RawRecord>,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let mut seen = 0u64;
    let mut send = |record: RawRecord| -> bool {
        seen += 1;
        seen <= skip || sender.blocking_send(record).is_ok()
    };
    if format == Format::Parquet {
        let path =
            path.context("Parquet input needs a file or s3:// location, not standard input")?;
        return columnar::read_rows(path, progress, |row| send(Ok(row)));
    }
    let source: Box<dyn Read + Send> = match path {
        Some(p) => {
            Box::new(std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?)
        }
        None => Box::new(std::io::stdin()),
    };
    match format {
        Format::Jsonl => {
            let mut reader = std::io::BufReader::with_capacity(1 << 20, source);
            let mut bytes = Vec::new();
            let mut number = 0u64;
            loop {
                bytes.clear();
                let n = reader
                    .read_until(b'\n', &mut bytes)
                    .context("reading the input")?;
                if n == 0 {
                    return Ok(());
                }
                number += 1;
                progress.inc(n as u64);
                // An undecodable line is that record's error; the run goes on.
                let record = match std::str::from_utf8(&bytes) {
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => parse_line(line),
                    Err(e) => Err(format!("line {number} is not UTF-8 text: {e}")),
                };
                if !send(record) {
                    return Ok(()); // the scorer stopped; its error is reported
                }
            }
        }
        Format::Parquet => unreachable!("read above"),
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(source);
            let headers = reader.headers().context("reading the CSV header")?.clone();
            let mut record = csv::StringRecord::new();
            let mut last = reader.position().byte();
            loop {
                let row = match reader.read_record(&mut record) {
                    Ok(false) => return Ok(()),
                    Ok(true) => Ok(csv_row(&headers, &record)),
                    Err(e) => Err(format!("unreadable CSV row: {e}")),
                };
                let position = reader.position().byte();
                progress.inc(position - last);
                last = position;
                if !send(row) {
                    return Ok(());
                }
            }
        }
    }
}

fn parse_line(line: &str) -> RawRecord {
    match serde_json::from_str(line) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("each line must be a JSON object".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A CSV row as a JSON object: cells that parse as JSON are that value, others strings.
fn csv_row(headers: &csv::StringRecord, record: &csv::StringRecord) -> Value {
    let fields = headers
        .iter()
        .zip(record.iter())
        .filter(|(_, cell)| !cell.is_empty())
        .map(|(name, cell)| {
            let value = serde_json::from_str::<Value>(cell)
                .ok()
                .filter(|v| !v.is_string())
                .unwrap_or_else(|| Value::String(cell.to_string()));
            (name.to_string(), value)
        });
    Value::Object(fields.collect())
}

/// Scores records as they arrive, `window` at a time, writing answers in input order.
async fn score_records(
    state: Arc<Mesh>,
    options: &ScoreOptions,
    mut receiver: tokio::sync::mpsc::Receiver<RawRecord>,
    mut writer: Box<dyn Write + Send>,
    format: Format,
    resumed: u64,
) -> anyhow::Result<BatchSummary> {
    type Answer = (Value, bool, Duration);
    let started = Instant::now();
    let mut summary = BatchSummary {
        resumed,
        ..Default::default()
    };
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Answer>> = VecDeque::new();
    let mut flush_one = |answer: Answer, writer: &mut dyn Write| -> anyhow::Result<()> {
        let (value, ok, took) = answer;
        summary.records += 1;
        summary.errors += u64::from(!ok);
        latencies_us.push(took.as_micros().min(u32::MAX as u128) as u32);
        write_answer(writer, format, &value).context("writing an answer")
    };
    loop {
        let next = receiver.recv().await;
        let Some(record) = next else { break };
        let (state, agent) = (state.clone(), options.agent);
        in_flight.push_back(tokio::spawn(async move {
            let t = Instant::now();
            let (value, ok) = state.score_record(agent, record).await;
            (value, ok, t.elapsed())
        }));
        if in_flight.len() >= options.window {
            let handle = in_flight.pop_front().expect("non-empty");
            flush_one(joined(handle).await, &mut *writer)?;
        }
    }
    while let Some(handle) = in_flight.pop_front() {
        flush_one(joined(handle).await, &mut *writer)?;
    }
    writer.flush().context("writing the output")?;
    summary.elapsed = started.elapsed();
    latencies_us.sort_unstable();
    let quantile = |q: f64| -> Duration {
        latencies_us
            .get(((latencies_us.len() as f64 - 1.0) * q).round().max(0.0) as usize)
            .map_or(Duration::ZERO, |us| Duration::from_micros(u64::from(*us)))
    };
    summary.p50 = quantile(0.5);
    summary.p95 = quantile(0.95);
    Ok(summary)
}

/// A record's answer; a record whose task failed (a bug) becomes an error answer.
async fn joined(
    handle: tokio::task::JoinHandle<(Value, bool, Duration)>,
) -> (Value, bool, Duration) {
    handle.await.unwrap_or_else(|e| {
        let error =
            json!({"error_type": "internal", "error": format!("scoring this record failed: {e}")});
        (json!({"id": null, "error": error}), false, Duration::ZERO)
    })
}

/// Writes one answer as one line (JSON) or one CSV row (`id`, `error`, `response`; no raw
/// newlines, so one row is one line and a resume can count them).
fn write_answer(writer: &mut dyn Write, format: Format, answer: &Value) -> std::io::Result<()> {
    match format {
        Format::Jsonl => {
            serde_json::to_writer(&mut *writer, answer)?;
            writer.write_all(b"\n")
        }
        Format::Parquet => unreachable!("Parquet answers are spooled as JSON lines"),
        Format::Csv => {
            let one_line = |s: Option<String>| s.unwrap_or_default().replace(['\n', '\r'], " ");
            let [id, error, response] = columnar::answer_columns(answer).map(one_line);
            let mut row = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            row.write_record([id, error, response])?;
            let bytes = row.into_inner().map_err(|e| e.into_error())?;
            writer.write_all(&bytes)
        }
    }
}
