//! The Hugging Face hub as a weight store (`--features hub`).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mesh_models::{ModelEntry, ModelsError};

use super::{file_matches, WeightStore};
use crate::{InferenceError, Result};

/// The Hugging Face hub through `hf-hub` (for users who are online; `HF_ENDPOINT`
/// points it at a mirror). The manifest's `hub_repo` names the repository.
pub struct HubStore {
    api: hf_hub::api::tokio::Api,
}

impl HubStore {
    /// Builds the client from the environment (`HF_ENDPOINT`, `HF_TOKEN`), caching into `cache_dir`.
    pub fn from_env(cache_dir: PathBuf) -> Result<Self> {
        let api = hf_hub::api::tokio::ApiBuilder::from_env()
            .with_cache_dir(cache_dir)
            .with_progress(false)
            .build()
            .map_err(|e| InferenceError::Store(format!("hub client: {e}")))?;
        Ok(Self { api })
    }
}

#[async_trait]
impl WeightStore for HubStore {
    fn describe(&self) -> String {
        "Hugging Face hub".to_string()
    }

    async fn fetch(&self, entry: &ModelEntry) -> Result<PathBuf> {
        let repo_id = entry.hub_repo.clone().ok_or_else(|| {
            InferenceError::Store(format!(
                "model `{}` has no hub_repo in the manifest",
                entry.id
            ))
        })?;
        let repo = self.api.repo(hf_hub::Repo::with_revision(
            repo_id.clone(),
            hf_hub::RepoType::Model,
            entry.hub_revision.clone().unwrap_or_else(|| "main".into()),
        ));
        let mut dir: Option<PathBuf> = None;
        for spec in &entry.files {
            let path = repo
                .get(&spec.name)
                .await
                .map_err(|e| InferenceError::Store(format!("hub {repo_id}/{}: {e}", spec.name)))?;
            if !file_matches(&path, spec.sha256.as_deref()).await? {
                // The cache entry is a symlink into the blob store: remove both.
                if let Ok(blob) = std::fs::canonicalize(&path) {
                    let _ = std::fs::remove_file(blob);
                }
                let _ = std::fs::remove_file(&path);
                return Err(InferenceError::Models(ModelsError::ChecksumMismatch {
                    path: PathBuf::from(format!("hub {repo_id}/{}", spec.name)),
                    expected: spec.sha256.clone().unwrap_or_default(),
                    actual: "a different file".into(),
                }));
            }
            dir = path.parent().map(Path::to_path_buf);
        }
        dir.ok_or_else(|| InferenceError::Store(format!("model `{}` lists no files", entry.id)))
    }
}
