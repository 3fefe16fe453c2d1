//! Weight stores: where a model's files come from, behind one trait.
//!
//! Every store hands back a local folder whose pinned files (manifest sha256)
//! have been checked; a file that fails its checksum is never left where a
//! loader could pick it up.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mesh_models::{verify_dir, ModelEntry, ModelsError};

use crate::{InferenceError, Result};

/// A place model files come from.
#[async_trait]
pub trait WeightStore: Send + Sync {
    /// Where the store reads from, for logs and errors.
    fn describe(&self) -> String;
    /// Makes every file of `entry` available in one local folder and returns it.
    async fn fetch(&self, entry: &ModelEntry) -> Result<PathBuf>;
}

#[cfg(feature = "aws")]
mod s3;
#[cfg(feature = "aws")]
pub use s3::{ByteStream, Fetched, S3Store, PART_BYTES, PART_CONCURRENCY};
#[cfg(feature = "hub")]
mod hub;
#[cfg(feature = "hub")]
pub use hub::HubStore;

/// Where weights come from, as given on the command line or in `MESH_MODEL_SOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local folder holding one sub-folder per model id.
    Local(PathBuf),
    /// `s3://bucket/prefix`: objects `prefix/<model id>/<file>`.
    S3 { bucket: String, prefix: String },
    /// `hf://` or `hub`: the Hugging Face hub (`HF_ENDPOINT` honoured).
    Hub,
}

impl StoreLocation {
    /// Parses `s3://bucket/prefix`, `hf://`/`hub`, or a folder path.
    pub fn parse(s: &str) -> Result<Self> {
        if crate::aws::S3Uri::is_s3(s) {
            let uri = crate::aws::S3Uri::parse(s)?;
            Ok(Self::S3 {
                bucket: uri.bucket,
                prefix: uri.key,
            })
        } else if s == "hub" || s.starts_with("hf://") {
            Ok(Self::Hub)
        } else {
            Ok(Self::Local(PathBuf::from(s)))
        }
    }
}

/// Opens the store for a location; `cache_dir` receives downloads (S3, hub).
pub async fn open_store(
    location: &StoreLocation,
    cache_dir: &Path,
) -> Result<Box<dyn WeightStore>> {
    let _ = cache_dir;
    Ok(match location {
        StoreLocation::Local(root) => Box::new(LocalStore::new(root.clone())),
        #[cfg(feature = "aws")]
        StoreLocation::S3 { bucket, prefix } => Box::new(
            S3Store::from_env(bucket.clone(), prefix.clone(), cache_dir.to_path_buf()).await,
        ),
        #[cfg(not(feature = "aws"))]
        StoreLocation::S3 { .. } => return Err(crate::error::not_built("S3 model sources", "aws")),
        #[cfg(feature = "hub")]
        StoreLocation::Hub => Box::new(HubStore::from_env(cache_dir.to_path_buf())?),
        #[cfg(not(feature = "hub"))]
        StoreLocation::Hub => return Err(crate::error::not_built("the Hugging Face hub", "hub")),
    })
}

/// Model folders on the local disk (`<root>/<model id>/`), checked against the manifest.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }
}

#[async_trait]
impl WeightStore for LocalStore {
    fn describe(&self) -> String {
        format!("local folder {}", self.root.display())
    }

    async fn fetch(&self, entry: &ModelEntry) -> Result<PathBuf> {
        let dir = self.root.join(&entry.id);
        let (e, d) = (entry.clone(), dir.clone());
        let verified = tokio::task::spawn_blocking(move || verify_dir(&e, &d))
            .await
            .map_err(|e| InferenceError::Store(e.to_string()))?;
        match verified {
            Ok(()) => Ok(dir),
            Err(ModelsError::MissingFile(path)) => Err(InferenceError::Store(format!(
                "{} is missing; run `msp-mesh models pull {}`",
                path.display(),
                entry.id
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// True when the file matches its pinned sha256 (or when none is pinned).
#[cfg(any(feature = "aws", feature = "hub"))]
async fn file_matches(path: &Path, sha256: Option<&str>) -> Result<bool> {
    let Some(expected) = sha256.map(str::to_string) else {
        return Ok(path.is_file());
    };
    let path = path.to_path_buf();
    let actual = tokio::task::spawn_blocking(move || mesh_models::sha256_file(&path))
        .await
        .map_err(|e| InferenceError::Store(e.to_string()))??;
    Ok(actual.eq_ignore_ascii_case(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            StoreLocation::parse("s3://bucket/a/b/").unwrap(),
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            StoreLocation::parse("s3://bucket").unwrap(),
            StoreLocation::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
        assert!(StoreLocation::parse("s3://").is_err());
        assert_eq!(StoreLocation::parse("hub").unwrap(), StoreLocation::Hub);
        assert_eq!(
            StoreLocation::parse("models/store").unwrap(),
            StoreLocation::Local("models/store".into())
        );
    }
}
