//! MITRE CWE 4.15 weaknesses from the `cwe` data set.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{read_json, KnowledgeError};

/// One weakness.
#[derive(Debug, Clone)]
pub struct Weakness {
    /// `CWE-79`.
    pub id: String,
    pub name: String,
    pub description: String,
}

#[derive(Deserialize)]
struct RawWeakness {
    #[serde(rename = "Description", default)]
    description: Option<String>,
    attr: RawAttr,
}

#[derive(Deserialize)]
struct RawAttr {
    #[serde(rename = "@_ID")]
    id: String,
    #[serde(rename = "@_Name")]
    name: String,
    #[serde(rename = "@_Status", default)]
    status: String,
}

/// Loads `cwe-dictionary.json`, leaving deprecated entries out, ordered by number.
pub fn load(dir: &Path) -> Result<Vec<Weakness>, KnowledgeError> {
    let path = dir.join("cwe-dictionary.json");
    let raw: BTreeMap<String, RawWeakness> = read_json(&path)?;
    let mut out: Vec<(u32, Weakness)> = raw
        .into_values()
        .filter(|w| w.attr.status != "Deprecated")
        .map(|w| {
            let n = w.attr.id.parse().unwrap_or(u32::MAX);
            let description = w
                .description
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            (
                n,
                Weakness {
                    id: format!("CWE-{}", w.attr.id),
                    name: w.attr.name,
                    description,
                },
            )
        })
        .collect();
    out.sort_by_key(|(n, _)| *n);
    Ok(out.into_iter().map(|(_, w)| w).collect())
}
