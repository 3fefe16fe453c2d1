//! Knowledge the language agents retrieve from: ATT&CK, CWE and the project's docs,
//! as passages embedded once (cached on disk, keyed by model and content) and searched
//! by cosine similarity.

pub mod attack;
pub mod cwe;
pub mod docs;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use mesh_inference::backend::EmbeddingBackend;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::AgentError;

/// Errors of loading knowledge corpora.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{0} is missing or unreadable ({1}); run `msp-mesh data pull`")]
    Missing(PathBuf, String),
    #[error("{0} has an unexpected format: {1}")]
    Format(PathBuf, String),
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, KnowledgeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| KnowledgeError::Missing(path.to_path_buf(), e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| KnowledgeError::Format(path.to_path_buf(), e.to_string()))
}

/// Which corpus a passage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PassageSource {
    AttackTechnique,
    /// A procedure example of a technique (its id is the technique's).
    AttackProcedure,
    AttackMitigation,
    Cwe,
    Docs,
    /// A control of a compliance catalogue.
    Control,
    /// A control's statement and discussion from NIST SP 800-53 (incident response,
    /// contingency planning, ...), guidance for `/nlp-query/ask`.
    SecurityGuidance,
    /// A partner profile.
    Partner,
}

/// One retrievable piece of knowledge.
#[derive(Debug, Clone, Serialize)]
pub struct Passage {
    /// Stable id (`T1566.001`, `M1049`, `CWE-79`, `docs:README#quick-start-1`).
    pub id: String,
    pub title: String,
    pub text: String,
    pub source: PassageSource,
    pub url: Option<String>,
}

impl Passage {
    /// What is embedded: the title, then the text.
    pub fn embedding_text(&self) -> String {
        format!("{}. {}", self.title, self.text)
    }
}

/// ATT&CK techniques as passages.
pub fn technique_passages(attack: &attack::Attack) -> Vec<Passage> {
    attack
        .techniques
        .iter()
        .map(|t| Passage {
            id: t.id.clone(),
            title: t.name.clone(),
            text: t.description.clone(),
            source: PassageSource::AttackTechnique,
            url: Some(t.url.clone()),
        })
        .collect()
}

/// ATT&CK mitigations as passages.
pub fn mitigation_passages(attack: &attack::Attack) -> Vec<Passage> {
    attack
        .mitigations
        .iter()
        .map(|m| Passage {
            id: m.id.clone(),
            title: m.name.clone(),
            text: m.description.clone(),
            source: PassageSource::AttackMitigation,
            url: None,
        })
        .collect()
}

/// CWE weaknesses as passages.
pub fn weakness_passages(weaknesses: &[cwe::Weakness]) -> Vec<Passage> {
    weaknesses
        .iter()
        .map(|w| Passage {
            id: w.id.clone(),
            title: w.name.clone(),
            text: w.description.clone(),
            source: PassageSource::Cwe,
            url: None,
        })
        .collect()
}

/// The unit-length embedding of one text (with its token count and truncation flag).
pub async fn embed_one(
    backend: &EmbeddingBackend,
    text: &str,
) -> Result<mesh_inference::backend::Embedding, AgentError> {
    let mut out = backend.embed(&[text.to_string()], true).await?;
    out.pop()
        .ok_or_else(|| AgentError::Unavailable("the encoder returned no embedding".into()))
}

/// Embeds `texts` through the backend in length-sorted chunks (less padding), returning
/// vectors in input order; `progress` is told how many are done after each chunk.
pub async fn embed_all(
    backend: &EmbeddingBackend,
    texts: &[String],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<Vec<f32>>, AgentError> {
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut out = vec![Vec::new(); texts.len()];
    let mut done = 0;
    for chunk in order.chunks(32) {
        let batch: Vec<String> = chunk.iter().map(|&i| texts[i].clone()).collect();
        let vectors = backend.embed(&batch, true).await?;
        for (&i, e) in chunk.iter().zip(vectors) {
            out[i] = e.vector;
        }
        done += chunk.len();
        progress(done);
    }
    Ok(out)
}

/// Passages with their unit-length embeddings, searchable by cosine similarity.
#[derive(Debug, Clone)]
pub struct KnowledgeIndex {
    passages: Vec<Passage>,
    /// Row-major `passages.len() x dim`.
    vectors: Vec<f32>,
    dim: usize,
    model_id: String,
}

/// One search hit.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub passage: &'a Passage,
    pub index: usize,
    /// Cosine similarity to the query.
    pub score: f32,
}

impl KnowledgeIndex {
    /// Embeds `passages` with `backend`, or reads the vectors from `cache_dir` when an
    /// earlier run embedded exactly these passages with the same model.
    pub async fn load_or_build(
        name: &str,
        passages: Vec<Passage>,
        backend: &EmbeddingBackend,
        cache_dir: &Path,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Self, AgentError> {
        let texts: Vec<String> = passages.iter().map(Passage::embedding_text).collect();
        let rows = cached_embeddings(name, &texts, backend, cache_dir, progress).await?;
        let vectors: Vec<f32> = rows.into_iter().flatten().collect();
        let model_id = backend.model_id().to_string();
        Ok(Self::from_parts(passages, vectors, backend.dim(), model_id))
    }

    /// An index from passages and their already computed unit vectors.
    pub fn from_parts(
        passages: Vec<Passage>,
        vectors: Vec<f32>,
        dim: usize,
        model_id: String,
    ) -> Self {
        assert_eq!(
            vectors.len(),
            passages.len() * dim,
            "one vector per passage"
        );
        Self {
            passages,
            vectors,
            dim,
            model_id,
        }
    }

    /// The embedding model that produced the vectors (`id@version`).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    pub fn len(&self) -> usize {
        self.passages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.passages.is_empty()
    }

    /// The vector of passage `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Cosine similarity of `query` (unit length) to every passage.
    pub fn scores(&self, query: &[f32]) -> Vec<f32> {
        (0..self.len())
            .map(|i| dot(self.vector(i), query))
            .collect()
    }

    /// The `k` passages most similar to `query` (unit length), best first, optionally
    /// only those `keep` accepts.
    pub fn search(&self, query: &[f32], k: usize, keep: impl Fn(&Passage) -> bool) -> Vec<Hit<'_>> {
        let mut hits: Vec<Hit> = self
            .scores(query)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(&self.passages[*i]))
            .map(|(index, score)| Hit {
                passage: &self.passages[index],
                index,
                score,
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(k);
        hits
    }
}

/// Dot product (cosine similarity for unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The cache namespace of an encoder: the checkpoint whose answers it gives
/// ([`mesh_models::Manifest::answers_as`]): a checkpoint derived by the exact
/// `bert-to-distilbert` conversion (hidden states within 1e-5;
/// `inference/tests/convert_distilbert.rs`) or stored as f16 (`agents/tests/f16_stored_encoder.rs`)
/// shares its source's namespace.
pub fn cache_namespace(model_id: &str) -> String {
    mesh_models::Manifest::builtin().answers_as(model_id)
}

/// Unit-length embeddings of `texts`. Cached per encoder namespace under `cache_dir`: a file
/// `<name>-<hash of the texts>.safetensors` holds this exact list; texts already embedded in
/// any other cached list (matched by the sha256 of the text) are reused, only the rest is computed.
pub async fn cached_embeddings(
    name: &str,
    texts: &[String],
    backend: &EmbeddingBackend,
    cache_dir: &Path,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Vec<Vec<f32>>, AgentError> {
    let dir = cache_dir.join(cache_namespace(backend.model_id()).replace(['@', '/'], "_"));
    let keys: Vec<[u8; 32]> = texts
        .iter()
        .map(|t| Sha256::digest(t.as_bytes()).into())
        .collect();
    let list_key = hex::encode(Sha256::digest(keys.concat()));
    let path = dir.join(format!("{name}-{}.safetensors", &list_key[..16]));
    let dim = backend.dim();
    if let Some((_, rows)) = read_cache(&path, dim).filter(|(k, _)| *k == keys) {
        return Ok(rows);
    }
    let mut known: HashMap<[u8; 32], Vec<f32>> = HashMap::new();
    for file in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        if let Some((k, rows)) = read_cache(&file.path(), dim) {
            known.extend(k.into_iter().zip(rows));
        }
    }
    let missing: Vec<usize> = (0..texts.len())
        .filter(|&i| !known.contains_key(&keys[i]))
        .collect();
    let reused = texts.len() - missing.len();
    let total = texts.len();
    let missing_texts: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
    let computed = embed_all(backend, &missing_texts, &|done| {
        progress(reused + done, total)
    })
    .await?;
    for (&i, v) in missing.iter().zip(computed) {
        known.insert(keys[i], v);
    }
    let rows: Vec<Vec<f32>> = keys.iter().map(|k| known[k].clone()).collect();
    if let Err(e) = write_cache(&path, &keys, &rows, dim) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache embeddings");
    }
    Ok(rows)
}

type CachedRows = (Vec<[u8; 32]>, Vec<Vec<f32>>);

fn read_cache(path: &Path, dim: usize) -> Option<CachedRows> {
    let tensors = candle_core::safetensors::load(path, &Device::Cpu).ok()?;
    let vectors = tensors.get("vectors")?;
    let keys = tensors.get("keys")?;
    let rows = vectors.dims().first().copied()?;
    if vectors.dims() != [rows, dim] || keys.dims() != [rows, 32] {
        return None;
    }
    let vectors = vectors.to_vec2::<f32>().ok()?;
    let keys = keys
        .to_vec2::<u8>()
        .ok()?
        .into_iter()
        .map(|k| k.try_into().ok())
        .collect::<Option<Vec<[u8; 32]>>>()?;
    Some((keys, vectors))
}

fn write_cache(
    path: &Path,
    keys: &[[u8; 32]],
    rows: &[Vec<f32>],
    dim: usize,
) -> candle_core::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let tensors = HashMap::from([
        (
            "vectors".to_string(),
            Tensor::from_vec(flat, (rows.len(), dim), &Device::Cpu)?,
        ),
        (
            "keys".to_string(),
            Tensor::from_vec(keys.concat(), (keys.len(), 32), &Device::Cpu)?,
        ),
    ]);
    let tmp = path.with_extension(format!("part-{}", std::process::id()));
    candle_core::safetensors::save(&tensors, &tmp)?;
    // On disk before it takes the name (a crash leaves the old cache or the new one).
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    mesh_models::sync_folder_of(path)?;
    Ok(())
}
