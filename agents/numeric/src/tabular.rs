//! Tabular data for the numeric agents: records of `{column: value}` with any schema, turned
//! into a dense, standardised feature matrix, plus the evaluation helpers the trainers share
//! (ROC-AUC, stratified folds, binary targets).
//!
//! Encoding (fitted on training rows only, so cross-validation folds do not leak):
//! - a column is **numeric** when every present value is a JSON number (or a string that parses
//!   as one); missing values (null, empty string, absent key) take the training median, and a
//!   `<column>=missing` indicator is added when the training rows had any; values are then
//!   standardised with the training mean and standard deviation;
//! - any other column is **categorical**: one indicator per level seen at least
//!   [`MIN_LEVEL_COUNT`] times (at most [`MAX_LEVELS`], the most frequent), rarer levels share
//!   `<column>=other`; a level never seen, or a missing value, sets no indicator.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::median;

/// Fewest occurrences for a categorical level to get its own indicator.
pub const MIN_LEVEL_COUNT: usize = 5;
/// Most indicators of one categorical column.
pub const MAX_LEVELS: usize = 50;

/// One record: column name to JSON value.
pub type Record = serde_json::Map<String, Value>;

/// A present value as text or number; `None` when missing.
fn present(value: Option<&Value>) -> Option<&Value> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(v) => Some(v),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|x| x.is_finite()),
        _ => None,
    }
}

fn as_level(value: &Value) -> String {
    match value {
        Value::String(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

/// How one column is encoded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ColumnEncoding {
    Numeric {
        median: f64,
        mean: f64,
        std: f64,
        /// A missing-value indicator follows the value.
        missing_indicator: bool,
    },
    Categorical {
        levels: Vec<String>,
        /// A shared indicator for the rarer levels follows.
        other: bool,
    },
}

/// One column of the schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Column {
    pub name: String,
    #[serde(flatten)]
    pub encoding: ColumnEncoding,
}

/// The fitted encoder: columns in a stable (sorted) order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Encoder {
    pub columns: Vec<Column>,
}

/// An encoded record: the feature vector and, per feature, the column it came from.
pub struct Encoded {
    pub features: Vec<f64>,
    /// Columns of the schema the record left missing (imputed or left at zero).
    pub missing: Vec<String>,
}

impl Encoder {
    /// Fits the encoder on `records`, using every column except `exclude`.
    pub fn fit(records: &[&Record], exclude: &[&str]) -> Self {
        let mut names: Vec<&String> = records
            .iter()
            .flat_map(|r| r.keys())
            .filter(|k| !exclude.contains(&k.as_str()))
            .collect();
        names.sort();
        names.dedup();
        let columns = names
            .into_iter()
            .map(|name| {
                let values: Vec<Option<&Value>> =
                    records.iter().map(|r| present(r.get(name))).collect();
                let numeric = values.iter().flatten().all(|v| as_number(v).is_some());
                let encoding = if numeric {
                    let xs: Vec<f64> = values
                        .iter()
                        .flatten()
                        .filter_map(|v| as_number(v))
                        .collect();
                    let median = median(&xs);
                    let filled: Vec<f64> = values
                        .iter()
                        .map(|v| v.and_then(as_number).unwrap_or(median))
                        .collect();
                    let mean = filled.iter().sum::<f64>() / filled.len().max(1) as f64;
                    let var = filled.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
                        / filled.len().max(1) as f64;
                    ColumnEncoding::Numeric {
                        median: if median.is_finite() { median } else { 0.0 },
                        mean,
                        std: if var > 0.0 { var.sqrt() } else { 1.0 },
                        missing_indicator: values.iter().any(Option::is_none),
                    }
                } else {
                    let mut counts: HashMap<String, usize> = HashMap::new();
                    for v in values.iter().flatten() {
                        *counts.entry(as_level(v)).or_default() += 1;
                    }
                    let mut ranked: Vec<(String, usize)> = counts.into_iter().collect();
                    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    let kept: Vec<String> = ranked
                        .iter()
                        .filter(|(_, c)| *c >= MIN_LEVEL_COUNT)
                        .take(MAX_LEVELS)
                        .map(|(l, _)| l.clone())
                        .collect();
                    let other = ranked.len() > kept.len();
                    let mut levels = kept;
                    levels.sort();
                    ColumnEncoding::Categorical { levels, other }
                };
                Column {
                    name: name.clone(),
                    encoding,
                }
            })
            .collect();
        Self { columns }
    }

    /// Number of encoded features.
    pub fn width(&self) -> usize {
        self.columns.iter().map(|c| c.width()).sum()
    }

    /// Feature names (`column`, `column=missing`, `column=level`, `column=other`).
    pub fn feature_names(&self) -> Vec<String> {
        let mut names = Vec::with_capacity(self.width());
        for c in &self.columns {
            match &c.encoding {
                ColumnEncoding::Numeric {
                    missing_indicator, ..
                } => {
                    names.push(c.name.clone());
                    if *missing_indicator {
                        names.push(format!("{}=missing", c.name));
                    }
                }
                ColumnEncoding::Categorical { levels, other } => {
                    names.extend(levels.iter().map(|l| format!("{}={l}", c.name)));
                    if *other {
                        names.push(format!("{}=other", c.name));
                    }
                }
            }
        }
        names
    }

    /// For each feature, the index of its column.
    pub fn feature_columns(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .flat_map(|(i, c)| std::iter::repeat_n(i, c.width()))
            .collect()
    }

    /// Encodes one record.
    pub fn encode(&self, record: &Record) -> Encoded {
        let mut features = Vec::with_capacity(self.width());
        let mut missing = Vec::new();
        for c in &self.columns {
            let value = present(record.get(&c.name));
            if value.is_none() {
                missing.push(c.name.clone());
            }
            match &c.encoding {
                ColumnEncoding::Numeric {
                    median,
                    mean,
                    std,
                    missing_indicator,
                } => {
                    let x = value.and_then(as_number).unwrap_or(*median);
                    features.push((x - mean) / std);
                    if *missing_indicator {
                        features.push(if value.is_none() { 1.0 } else { 0.0 });
                    }
                }
                ColumnEncoding::Categorical { levels, other } => {
                    let level = value.map(as_level);
                    let start = features.len();
                    features.extend(levels.iter().map(|l| {
                        if level.as_deref() == Some(l.as_str()) {
                            1.0
                        } else {
                            0.0
                        }
                    }));
                    if *other {
                        let is_other =
                            level.is_some() && features[start..].iter().all(|&x| x == 0.0);
                        features.push(if is_other { 1.0 } else { 0.0 });
                    }
                }
            }
        }
        Encoded { features, missing }
    }
}

impl Column {
    fn width(&self) -> usize {
        match &self.encoding {
            ColumnEncoding::Numeric {
                missing_indicator, ..
            } => 1 + usize::from(*missing_indicator),
            ColumnEncoding::Categorical { levels, other } => levels.len() + usize::from(*other),
        }
    }
}

/// Reads a binary target: yes/no, true/false, 1/0 (any case, JSON bool, number or string).
pub fn binary_target(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" | "y" => Some(true),
            "no" | "false" | "0" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// ROC-AUC by the Mann-Whitney statistic (ties count one half). NaN when a class is absent.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = rank;
        }
        i = j + 1;
    }
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return f64::NAN;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    (rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives)
}

/// Stratified k-fold assignment of binary labels: `fold[i]` in 0..k, each class spread evenly,
/// seeded ([`crate::validation::stratified_folds`] with false = 0 and true = 1).
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let classes: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    crate::validation::stratified_folds(&classes, k, seed)
}

/// Reads a CSV file with a header row into records: numbers where a field parses as one,
/// null for an empty field, text otherwise.
pub fn read_csv_records(path: &std::path::Path) -> Result<Vec<Record>, String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let headers = reader
        .headers()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .clone();
    let mut records = Vec::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| format!("{} record {}: {e}", path.display(), line + 1))?;
        let record: Record = headers
            .iter()
            .zip(row.iter())
            .map(|(name, field)| {
                let field = field.trim();
                let value = if field.is_empty() {
                    Value::Null
                } else if let Some(n) = field
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                {
                    Value::Number(n)
                } else {
                    Value::String(field.to_string())
                };
                (name.to_string(), value)
            })
            .collect();
        records.push(record);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(v: Value) -> Record {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn encodes_numeric_categorical_and_missing_values_by_hand() {
        let rows: Vec<Record> = (0..10)
            .map(|i| {
                record(json!({
                    "calls": if i == 9 { Value::Null } else { json!(i) },
                    "plan": if i < 6 { "basic" } else { "pro" },
                    "churn": "no"
                }))
            })
            .collect();
        let refs: Vec<&Record> = rows.iter().collect();
        let enc = Encoder::fit(&refs, &["churn"]);
        // calls 0..=8 plus one missing: median 4, filled mean (36 + 4) / 10 = 4.
        assert_eq!(
            enc.columns[0].encoding,
            ColumnEncoding::Numeric {
                median: 4.0,
                mean: 4.0,
                std: (60.0f64 / 10.0).sqrt(),
                missing_indicator: true
            }
        );
        // "pro" appears 4 times (< 5): it becomes `other`.
        assert_eq!(
            enc.feature_names(),
            vec!["calls", "calls=missing", "plan=basic", "plan=other"]
        );
        let e = enc.encode(&record(json!({"plan": "pro"})));
        assert_eq!(e.features, vec![0.0, 1.0, 0.0, 1.0]);
        assert_eq!(e.missing, vec!["calls"]);
        let e = enc.encode(&record(json!({"calls": "7", "plan": "basic"})));
        assert!((e.features[0] - 3.0 / 6f64.sqrt()).abs() < 1e-12);
        assert_eq!(&e.features[1..], &[0.0, 1.0, 0.0]);
    }

    #[test]
    fn auc_matches_a_hand_count() {
        // Pairs (pos, neg): (0.9 > 0.1), (0.9 > 0.4), (0.35 < 0.4), (0.35 > 0.1): 3 of 4.
        assert_eq!(
            roc_auc(&[0.1, 0.4, 0.35, 0.9], &[false, false, true, true]),
            0.75
        );
        assert_eq!(roc_auc(&[0.5, 0.5], &[false, true]), 0.5);
        assert!(roc_auc(&[0.5], &[true]).is_nan());
    }

    #[test]
    fn targets_and_folds() {
        assert_eq!(binary_target(&json!("Yes")), Some(true));
        assert_eq!(binary_target(&json!(0)), Some(false));
        assert_eq!(binary_target(&json!(true)), Some(true));
        assert_eq!(binary_target(&json!("maybe")), None);
        let labels: Vec<bool> = (0..20).map(|i| i % 4 == 0).collect();
        let folds = stratified_folds(&labels, 5, 1);
        for f in 0..5 {
            let pos = (0..20).filter(|&i| folds[i] == f && labels[i]).count();
            assert_eq!(pos, 1);
        }
    }
}
