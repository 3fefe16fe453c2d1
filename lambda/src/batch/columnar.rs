//! Parquet for `msp-mesh score`: records read row by row with the `parquet` crate's record
//! API (each row as a JSON object: its columns are the request's fields), and answers written as
//! a Parquet file with the CSV answer's columns (`id`, `error`, `response`, UTF-8 strings) from
//! the JSON-lines spool a run appends to (so a Parquet output resumes like any other).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use serde_json::Value;

/// Rows per row group of an answers file.
const ROW_GROUP: usize = 10_000;

/// The schema of an answers file.
const ANSWERS_SCHEMA: &str = "message answers {
    OPTIONAL BYTE_ARRAY id (UTF8);
    OPTIONAL BYTE_ARRAY error (UTF8);
    OPTIONAL BYTE_ARRAY response (UTF8);
}";

/// Calls `each` with every row of a Parquet file as a JSON object, in order; `progress` gets the
/// file's bytes spread evenly over its rows. Stops early when `each` returns false.
pub fn read_rows(
    path: &Path,
    progress: &indicatif::ProgressBar,
    mut each: impl FnMut(Value) -> bool,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let bytes = file.metadata()?.len();
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a Parquet file", path.display()))?;
    let rows = reader.metadata().file_metadata().num_rows().max(1) as u64;
    let per_row = bytes / rows;
    for row in reader
        .get_row_iter(None)
        .context("reading the Parquet rows")?
    {
        let row = row.context("reading a Parquet row")?;
        progress.inc(per_row);
        if !each(row.to_json_value()) {
            break;
        }
    }
    Ok(())
}

/// One answer as the three columns of an answers file.
pub fn answer_columns(answer: &Value) -> [Option<String>; 3] {
    let mut fields = answer.as_object().cloned().unwrap_or_default();
    let text = |v: Option<Value>| match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(other) => Some(other.to_string()),
    };
    let id = text(fields.remove("id"));
    let error = text(fields.remove("error"));
    let response = (!fields.is_empty()).then(|| Value::Object(fields).to_string());
    [id, error, response]
}

/// Writes the answers of a JSON-lines file as a Parquet answers file.
pub fn write_answers(jsonl: &Path, target: &Path) -> anyhow::Result<u64> {
    let schema = Arc::new(parse_message_type(ANSWERS_SCHEMA).expect("a valid schema"));
    let file =
        std::fs::File::create(target).with_context(|| format!("creating {}", target.display()))?;
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))?;
    let reader = std::io::BufReader::new(
        std::fs::File::open(jsonl).with_context(|| format!("opening {}", jsonl.display()))?,
    );
    let mut rows = 0u64;
    let mut group: Vec<[Option<String>; 3]> = Vec::with_capacity(ROW_GROUP);
    let mut lines = reader.lines();
    loop {
        let line = lines.next().transpose()?;
        if let Some(line) = &line {
            let answer: Value = serde_json::from_str(line).context("reading the answers spool")?;
            group.push(answer_columns(&answer));
        }
        if group.len() == ROW_GROUP || (line.is_none() && !group.is_empty()) {
            let mut row_group = writer.next_row_group()?;
            for column in 0..3 {
                let mut values = Vec::with_capacity(group.len());
                let mut definitions = Vec::with_capacity(group.len());
                for row in &group {
                    match &row[column] {
                        Some(text) => {
                            values.push(ByteArray::from(text.as_str()));
                            definitions.push(1);
                        }
                        None => definitions.push(0),
                    }
                }
                let mut column_writer = row_group.next_column()?.expect("three columns");
                column_writer.typed::<ByteArrayType>().write_batch(
                    &values,
                    Some(&definitions),
                    None,
                )?;
                column_writer.close()?;
            }
            row_group.close()?;
            rows += group.len() as u64;
            group.clear();
        }
        if line.is_none() {
            break;
        }
    }
    writer.close()?;
    Ok(rows)
}
