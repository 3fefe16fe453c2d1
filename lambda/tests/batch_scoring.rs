//! `msp-mesh score` at scale: a run killed midway resumes with every record answered exactly
//! once and the same answers as an uninterrupted run; CSV in and out; input and output on a
//! real S3 server (s3s-fs, SigV4 checked).

mod common;
#[path = "common/s3.rs"]
mod s3;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::mesh_command;
use serde_json::Value;

fn score_command(dir: &Path, input: &Path, output: &Path, extra: &[&str]) -> std::process::Command {
    let mut command = mesh_command("score", &dir.join("partners.json"));
    command
        .args(["--agent", "anomaly-detection"])
        .arg("--input")
        .arg(input)
        .arg("--output")
        .arg(output)
        .args(extra);
    command
}

/// Scores `input` into `output` with the market-intelligence agent, which must succeed.
fn score_market(dir: &Path, input: &Path, output: &Path) {
    common::succeed(
        mesh_command("score", &dir.join("partners.json"))
            .args(["--agent", "market-intelligence"])
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output),
    );
}

fn complete_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}

/// The answers without the per-call time stamp.
fn answers(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("timestamp");
            v
        })
        .collect()
}

#[test]
fn a_killed_run_resumes_with_every_record_answered_exactly_once() {
    const N: usize = 30_000;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    common::anomaly_records(&input, N);

    let reference = dir.path().join("reference.jsonl");
    let status = score_command(dir.path(), &input, &reference, &[])
        .status()
        .unwrap();
    assert!(status.success());

    // Kill a second run once a tenth of the answers are written.
    let output = dir.path().join("out.jsonl");
    let mut child = score_command(dir.path(), &input, &output, &[])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while complete_lines(&output) < N / 10 {
        assert!(Instant::now() < deadline, "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL: no flush, possibly a torn last line
    child.wait().unwrap();
    let written = complete_lines(&output);
    assert!(
        written < N,
        "killed midway: {written} of {N} answers written"
    );

    // Without --resume the output is not overwritten.
    let refused = score_command(dir.path(), &input, &output, &[])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--resume"));

    // --resume refuses an input that changed, whether its size or only its content (also
    // after a run without --resume over the changed input was refused).
    let original = std::fs::read(&input).unwrap();
    let mut same_size = original.clone();
    let at = same_size.len() / 2
        + same_size[same_size.len() / 2..]
            .iter()
            .position(|b| b.is_ascii_digit())
            .unwrap();
    same_size[at] = if same_size[at] == b'1' { b'2' } else { b'1' };
    let mut longer = original.clone();
    longer.extend_from_slice(b"{\"id\": \"extra\", \"values\": [1, 2, 3]}\n");
    for changed in [same_size, longer] {
        std::fs::write(&input, &changed).unwrap();
        let fresh = score_command(dir.path(), &input, &output, &[])
            .output()
            .unwrap();
        assert!(!fresh.status.success());
        let refused = score_command(dir.path(), &input, &output, &["--resume"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "resumed over a changed input");
        assert!(stderr.contains("the input changed"), "{stderr}");
    }
    assert_eq!(
        complete_lines(&output),
        written,
        "a refused resume writes nothing"
    );
    std::fs::write(&input, &original).unwrap();

    let resumed = score_command(dir.path(), &input, &output, &["--resume"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{stderr}");
    assert!(stderr.contains("answered by an earlier run"), "{stderr}");
    assert!(
        !dir.path().join("out.jsonl.input.json").exists(),
        "the input record goes once the output is complete"
    );

    let got = answers(&output);
    let ids: Vec<&str> = got.iter().map(|a| a["id"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..N).map(|i| format!("r{i:06}")).collect();
    assert_eq!(ids, expected, "every id once, in input order");
    assert_eq!(
        got,
        answers(&reference),
        "the same answers as an uninterrupted run"
    );
    assert!(got.iter().all(|a| a.get("error").is_none()));
    assert!(got[0]["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["value"] == 99.0));
}

#[test]
fn csv_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("reviews.csv");
    let output = dir.path().join("answers.csv");
    std::fs::write(
        &input,
        "id,query\n\
         a,\"Excellent value, I love it.\"\n\
         b,\n\
         c,Awful. It broke on day one.\n",
    )
    .unwrap();
    score_market(dir.path(), &input, &output);
    let mut reader = csv::Reader::from_path(&output).unwrap();
    assert_eq!(reader.headers().unwrap(), vec!["id", "error", "response"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3);
    let response = |row: &csv::StringRecord| serde_json::from_str::<Value>(&row[2]).unwrap();
    assert_eq!(&rows[0][0], "a");
    assert_eq!(response(&rows[0])["sentiment"], "POSITIVE");
    // The empty cell is a missing field: the agent's 422 names it.
    assert_eq!(&rows[1][0], "b");
    let error: Value = serde_json::from_str(&rows[1][1]).unwrap();
    assert_eq!(error["field"], "query", "{error}");
    assert_eq!(response(&rows[2])["sentiment"], "NEGATIVE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_and_output_on_s3() {
    let root = tempfile::tempdir().unwrap();
    let (endpoint, _) = s3::start_s3(root.path(), "batch").await;
    let dir = tempfile::tempdir().unwrap();
    // The input is an object of the bucket (s3s-fs keeps objects as files).
    std::fs::create_dir_all(root.path().join("batch/in")).unwrap();
    common::anomaly_records(&root.path().join("batch/in/records.jsonl"), 500);
    let local_reference = dir.path().join("reference.jsonl");
    let (d, r) = (dir.path().to_path_buf(), local_reference.clone());
    let input_file = root.path().join("batch/in/records.jsonl");
    let status = tokio::task::spawn_blocking(move || {
        score_command(&d, &input_file, &r, &[]).status().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success());

    let d = dir.path().to_path_buf();
    let run = tokio::task::spawn_blocking(move || {
        mesh_command("score", &d.join("partners.json"))
            .args(["--agent", "anomaly-detection"])
            .args(["--input", "s3://batch/in/records.jsonl"])
            .args(["--output", "s3://batch/out/answers.jsonl"])
            .env("AWS_ACCESS_KEY_ID", s3::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", s3::SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_S3", &endpoint)
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        answers(&root.path().join("batch/out/answers.jsonl")),
        answers(&local_reference)
    );
}

/// A Parquet file of (id, query) rows, written with the `parquet` crate's column writer.
fn write_requests_parquet(path: &Path, rows: &[(&str, &str)]) {
    use parquet::data_type::{ByteArray, ByteArrayType};
    use std::sync::Arc;
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(
            "message requests { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY query (UTF8); }",
        )
        .unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        parquet::file::writer::SerializedFileWriter::new(file, schema, Default::default()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    for column in 0..2 {
        let values: Vec<ByteArray> = rows
            .iter()
            .map(|r| ByteArray::from(if column == 0 { r.0 } else { r.1 }))
            .collect();
        let mut writer = group.next_column().unwrap().unwrap();
        writer
            .typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        writer.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_in_and_out() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("reviews.parquet");
    let output = dir.path().join("answers.parquet");
    write_requests_parquet(
        &input,
        &[
            ("a", "Excellent value, I love it."),
            ("b", ""),
            ("c", "Awful. It broke on day one."),
        ],
    );
    score_market(dir.path(), &input, &output);
    let reader = SerializedFileReader::new(std::fs::File::open(&output).unwrap()).unwrap();
    let rows: Vec<Value> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().to_json_value())
        .collect();
    assert_eq!(rows.len(), 3);
    let response =
        |row: &Value| serde_json::from_str::<Value>(row["response"].as_str().unwrap()).unwrap();
    assert_eq!(rows[0]["id"], "a");
    assert_eq!(response(&rows[0])["sentiment"], "POSITIVE");
    assert_eq!(rows[1]["id"], "b");
    assert!(rows[1]["response"].is_null());
    let error: Value = serde_json::from_str(rows[1]["error"].as_str().unwrap()).unwrap();
    assert_eq!(error["field"], "query", "{error}");
    assert_eq!(response(&rows[2])["sentiment"], "NEGATIVE");
    assert!(
        !dir.path().join("answers.parquet.part").exists(),
        "the spool is removed"
    );
}

/// A line that is not UTF-8 is that record's error answer; the records around it are scored
/// and the run succeeds.
#[test]
fn an_undecodable_line_is_an_error_answer_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    common::anomaly_records(&input, 4);
    let mut bytes = std::fs::read(&input).unwrap();
    let second = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
    bytes.splice(
        second..second,
        b"{\"id\": \"bad\xff\xfe\"}\n".iter().copied(),
    );
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.path().join("out.jsonl");
    let run = score_command(dir.path(), &input, &output, &[])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got = answers(&output);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(got[0]["id"], "r000000");
    let error = got[1]["error"].to_string();
    assert!(error.contains("line 2 is not UTF-8"), "{error}");
    let ids: Vec<&str> = got[2..].iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["r000001", "r000002", "r000003"]);
}
