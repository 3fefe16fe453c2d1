//! Model bundles: a local folder tree (models, data sets, embedding caches) published to S3
//! under one manifest of sha256 sums, and synced back into a local folder at a Lambda cold
//! start. Files already present and verified are not downloaded again.

// Without AWS only the manifest types are used (the serving code reports a sync in them).
#![cfg_attr(not(feature = "aws"), allow(dead_code, unused_imports))]

use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

#[cfg(feature = "aws")]
use crate::store::{Fetched, S3Store};
use crate::{InferenceError, Result};

/// Object name of the manifest, under the bundle's prefix.
pub const BUNDLE_MANIFEST: &str = "bundle.json";

/// Format version written into new manifests (2: files may be stored gzip-compressed).
pub const BUNDLE_FORMAT: u32 = 2;

/// [`BundleFile::encoding`] of a file stored gzip-compressed, as `<path>.gz`.
pub const GZIP: &str = "gzip";

/// JSON files from this size on are stored gzip-compressed: the data sets shrink 5-10 times,
/// and inflating is faster than downloading the difference.
const GZIP_FROM_BYTES: u64 = 256 * 1024;

/// Downloads (or uploads) in flight at once.
const CONCURRENCY: usize = 8;

/// The files of a bundle, with sizes and checksums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    pub format: u32,
    pub files: Vec<BundleFile>,
}

/// One file of a bundle: its path relative to the bundle root (`/`-separated), its size and
/// sha256 as it is used, and how it is stored when not as is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// [`GZIP`] when the object is the file gzip-compressed, under `<path>.gz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// Size of the stored object, when it differs from `size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
}

impl BundleFile {
    /// The object's path relative to the bundle prefix.
    pub fn object_path(&self) -> String {
        match self.encoding.as_deref() {
            Some(GZIP) => format!("{}.gz", self.path),
            _ => self.path.clone(),
        }
    }
}

/// What is uploaded for one bundle file: the file itself, or its compressed bytes.
enum Payload {
    File(PathBuf),
    Bytes(Vec<u8>),
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

impl SyncReport {
    /// One report for two parts of a bundle synced at the same time (the longer part's time).
    pub fn merge(self, other: SyncReport) -> SyncReport {
        SyncReport {
            files: self.files + other.files,
            bytes: self.bytes + other.bytes,
            downloaded_files: self.downloaded_files + other.downloaded_files,
            downloaded_bytes: self.downloaded_bytes + other.downloaded_bytes,
            reused_files: self.reused_files + other.reused_files,
            elapsed_ms: self.elapsed_ms.max(other.elapsed_ms),
            ..self
        }
    }
}

/// A local file to publish, and its path inside the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    pub local: PathBuf,
    pub path: String,
}

impl BundleManifest {
    /// Checksums the given files (as they are used, before any compression).
    pub fn from_files(files: &[LocalFile]) -> Result<Self> {
        let prepared = prepare(files, false)?;
        Ok(Self::of(
            prepared.into_iter().map(|(entry, _)| entry).collect(),
        ))
    }

    fn of(mut entries: Vec<BundleFile>) -> Self {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Self {
            format: BUNDLE_FORMAT,
            files: entries,
        }
    }

    /// Total size of the files.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Each file's manifest entry and (with `compress`) what to upload: large JSON gzip-compressed.
fn prepare(files: &[LocalFile], compress: bool) -> Result<Vec<(BundleFile, Payload)>> {
    let mut prepared = Vec::with_capacity(files.len());
    for file in files {
        local_path(Path::new(""), &file.path)?;
        let size = std::fs::metadata(&file.local)
            .map_err(InferenceError::io(&file.local))?
            .len();
        let mut entry = BundleFile {
            path: file.path.clone(),
            size,
            sha256: mesh_models::sha256_file(&file.local)?,
            encoding: None,
            stored_size: None,
        };
        let payload = if compress && file.path.ends_with(".json") && size >= GZIP_FROM_BYTES {
            let compressed = gzip_file(&file.local)?;
            entry.encoding = Some(GZIP.to_string());
            entry.stored_size = Some(compressed.len() as u64);
            Payload::Bytes(compressed)
        } else {
            Payload::File(file.local.clone())
        };
        prepared.push((entry, payload));
    }
    Ok(prepared)
}

fn gzip_file(path: &Path) -> Result<Vec<u8>> {
    use std::io::Write;
    let bytes = std::fs::read(path).map_err(InferenceError::io(path))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&bytes)
        .and_then(|()| encoder.finish())
        .map_err(InferenceError::io(path))
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

#[cfg(feature = "aws")]
/// Checksums and uploads `files` (large JSON gzip-compressed), then the manifest (last, so a
/// reader never sees a manifest whose files are not all there). `progress(done, total)`
/// counts uploads.
pub async fn push(
    store: &S3Store,
    files: Vec<LocalFile>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BundleManifest> {
    let prepared = tokio::task::spawn_blocking(move || prepare(&files, true))
        .await
        .map_err(|e| InferenceError::Store(e.to_string()))??;
    let total = prepared.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let manifest = stream::iter(prepared)
        .map(|(entry, payload)| async {
            let key = store.object_key(&entry.object_path());
            match payload {
                Payload::File(local) => store.put_file(&key, &local).await?,
                Payload::Bytes(bytes) => store.put_bytes(&key, bytes).await?,
            }
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            progress(n, total);
            Ok::<_, InferenceError>(entry)
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<BundleFile>>()
        .await
        .map(BundleManifest::of)?;
    let json = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| InferenceError::Store(format!("bundle manifest: {e}")))?;
    store
        .put_bytes(&store.object_key(BUNDLE_MANIFEST), json)
        .await?;
    Ok(manifest)
}

#[cfg(feature = "aws")]
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

#[cfg(feature = "aws")]
/// Makes `root` hold every file of `manifest`, verified: present files that match are
/// reused, the others downloaded (several at once; a large one as parallel ranged GETs).
pub async fn sync(store: &S3Store, manifest: &BundleManifest, root: &Path) -> Result<SyncReport> {
    let started = Instant::now();
    let fetched: Vec<Fetched> = stream::iter(&manifest.files)
        .map(|file| async {
            let local = local_path(root, &file.path)?;
            let key = store.object_key(&file.object_path());
            match file.encoding.as_deref() {
                None => {
                    store
                        .fetch_object_sized(&key, &local, Some(&file.sha256), file.size)
                        .await
                }
                Some(GZIP) => {
                    store
                        .fetch_gzip_object(&key, &local, Some(&file.sha256))
                        .await
                }
                Some(other) => Err(InferenceError::Store(format!(
                    "bundle file {}: unknown encoding `{other}`",
                    file.path
                ))),
            }
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
