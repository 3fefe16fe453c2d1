//! Model bundles: a local folder tree (models, data sets, embedding caches) published to S3
//! under one manifest of sha256 sums, and synced back into a local folder at a Lambda cold
//! start. Files already present and verified are not downloaded again.

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::store::{Fetched, S3Store};
use crate::{InferenceError, Result};

/// Object name of the manifest, under the bundle's prefix.
pub const BUNDLE_MANIFEST: &str = "bundle.json";

/// Format version written into new manifests.
pub const BUNDLE_FORMAT: u32 = 1;

/// Downloads (or uploads) in flight at once.
const CONCURRENCY: usize = 8;

/// The files of a bundle, with sizes and checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub files: Vec<BundleFile>,
}

/// One file of a bundle: its path relative to the bundle root (`/`-separated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// What a sync did (reported by `/health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// `s3://bucket/prefix`.
    pub source: String,
    /// Local folder the bundle was synced into.
    pub root: PathBuf,
    pub files: usize,
    pub bytes: u64,
    pub downloaded_files: usize,
    pub downloaded_bytes: u64,
    pub reused_files: usize,
    pub elapsed_ms: u64,
}

/// A local file to publish, and its path inside the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub local: PathBuf,
    pub path: String,
}

impl BundleManifest {
    /// Checksums the given files.
    pub fn from_files(files: &[LocalFile]) -> Result<Self> {
        let mut entries = Vec::with_capacity(files.len());
        for file in files {
            local_path(Path::new(""), &file.path)?;
            let size = std::fs::metadata(&file.local)
                .map_err(InferenceError::io(&file.local))?
                .len();
            entries.push(BundleFile {
                path: file.path.clone(),
                size,
                sha256: mesh_models::sha256_file(&file.local)?,
            });
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self {
            format: BUNDLE_FORMAT,
            files: entries,
        })
    }

    /// Total size of the files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// `root` joined with a bundle path, refusing absolute paths and `..`.
fn local_path(root: &Path, relative: &str) -> Result<PathBuf> {
    let path = Path::new(relative);
    if relative.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(InferenceError::Store(format!(
            "bundle path `{relative}` must be relative, without `..`"
        )));
    }
    Ok(root.join(path))
}

/// Checksums and uploads `files`, then the manifest (last, so a reader never sees a
/// manifest whose files are not all there). `progress(done, total)` counts uploads.
pub async fn push(
    store: &S3Store,
    files: Vec<LocalFile>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BundleManifest> {
    let listed = files.clone();
    let manifest = tokio::task::spawn_blocking(move || BundleManifest::from_files(&listed))
        .await
        .map_err(|e| InferenceError::Store(e.to_string()))??;
    let total = files.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    stream::iter(&files)
        .map(|file| async {
            store
                .put_file(&store.object_key(&file.path), &file.local)
                .await?;
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
            Ok::<_, InferenceError>(())
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<()>()
        .await?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| InferenceError::Store(format!("bundle manifest: {e}")))?;
    store
        .put_bytes(&store.object_key(BUNDLE_MANIFEST), json)
        .await?;
    Ok(manifest)
}

/// Reads the bundle manifest, or `None` when the prefix holds none.
pub async fn read_manifest(store: &S3Store) -> Result<Option<BundleManifest>> {
    let key = store.object_key(BUNDLE_MANIFEST);
    let Some(bytes) = store.get_bytes(&key).await? else {
        return Ok(None);
    };
    let manifest: BundleManifest = serde_json::from_slice(&bytes)
        .map_err(|e| InferenceError::Store(format!("{}: {e}", store.location(&key))))?;
    if manifest.format > BUNDLE_FORMAT {
        return Err(InferenceError::Store(format!(
            "{}: bundle format {} is newer than this build reads ({BUNDLE_FORMAT})",
            store.location(&key),
            manifest.format
        )));
    }
    Ok(Some(manifest))
}

/// Makes `root` hold every file of `manifest`, verified: present files that match are
/// reused, the others downloaded (several at once; a large one as parallel ranged GETs).
pub async fn sync(store: &S3Store, manifest: &BundleManifest, root: &Path) -> Result<SyncReport> {
    let started = Instant::now();
    let fetched: Vec<Fetched> = stream::iter(&manifest.files)
        .map(|file| async {
            let local = local_path(root, &file.path)?;
            store
                .fetch_object_sized(
                    &store.object_key(&file.path),
                    &local,
                    Some(&file.sha256),
                    file.size,
                )
                .await
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let downloaded: Vec<u64> = fetched
        .iter()
        .filter_map(|f| match f {
            Fetched::Downloaded { bytes } => Some(*bytes),
            Fetched::Reused => None,
        })
        .collect();
    Ok(SyncReport {
        source: store.location(&store.object_key("")),
        root: root.to_path_buf(),
        files: manifest.files.len(),
        bytes: manifest.bytes(),
        downloaded_files: downloaded.len(),
        downloaded_bytes: downloaded.iter().sum(),
        reused_files: fetched.len() - downloaded.len(),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_stay_inside_the_root() {
        let root = Path::new("/tmp/b");
        assert_eq!(
            local_path(root, "models/x/config.json").unwrap(),
            PathBuf::from("/tmp/b/models/x/config.json")
        );
        for bad in ["", "/etc/passwd", "../x", "models/../../x", "./x"] {
            assert!(local_path(root, bad).is_err(), "{bad}");
        }
    }
}
