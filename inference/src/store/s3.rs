//! The S3 weight store (`--features aws`): objects `s3://bucket/prefix/<model id>/<file>`,
//! streamed into a cache folder, verified, then renamed into place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use mesh_models::{sha256_file, FileSpec, ModelEntry, ModelsError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::{file_matches, WeightStore};
use crate::{InferenceError, Result};

/// The error of an object that is not there.
fn no_such_key(location: &str) -> InferenceError {
    InferenceError::Store(format!("{location}: NoSuchKey: the object does not exist"))
}

/// A checksum mismatch of the object at `location`, or nothing.
fn same_checksum(location: &str, expected: &str, actual: String) -> Result<()> {
    if actual.eq_ignore_ascii_case(expected) {
        return Ok(());
    }
    Err(InferenceError::Models(ModelsError::ChecksumMismatch {
        path: PathBuf::from(location),
        expected: expected.to_string(),
        actual,
    }))
}

/// Objects larger than this are fetched as ranged GETs of this many bytes.
pub const PART_BYTES: u64 = 8 * 1024 * 1024;
/// Ranged GETs of one object in flight at once.
pub const PART_CONCURRENCY: usize = 8;

/// The body of an S3 object, as [`S3Store::read_from`] returns it.
pub use aws_sdk_s3::primitives::ByteStream;

/// Objects in S3 (`s3://bucket/prefix/<model id>/<file>`), downloaded into a cache folder.
///
/// Each file is streamed into a unique temporary name beside its target while
/// its sha256 is computed, checked against the manifest, then renamed into
/// place, so concurrent cold starts never see a partial or unverified file.
/// Verified files are reused (warm invocations, later cold starts on the same `/tmp`).
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    cache_dir: PathBuf,
    verified: Mutex<HashSet<PathBuf>>,
}

impl S3Store {
    /// Uses an existing client.
    pub fn new(
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
        cache_dir: PathBuf,
    ) -> Self {
        Self {
            client,
            bucket,
            prefix,
            cache_dir,
            verified: Mutex::new(HashSet::new()),
        }
    }

    /// Builds a client from the environment (`AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`
    /// switch to path-style addressing for local S3-compatible servers).
    pub async fn from_env(bucket: String, prefix: String, cache_dir: PathBuf) -> Self {
        let shared = crate::aws::sdk_config(crate::aws::SdkRetries::Standard).await;
        Self::new(crate::aws::s3_client(&shared), bucket, prefix, cache_dir)
    }

    fn key(&self, entry: &ModelEntry, file: &str) -> String {
        self.object_key(&format!("{}/{file}", entry.id))
    }

    async fn fetch_file(&self, entry: &ModelEntry, spec: &FileSpec, dir: &Path) -> Result<()> {
        let key = self.key(entry, &spec.name);
        self.fetch_object(&key, &dir.join(&spec.name), spec.sha256.as_deref())
            .await
            .map(|_| ())
    }

    /// The object key of `relative` under this store's prefix.
    pub fn object_key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// `s3://bucket/key`, for messages.
    pub fn location(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// Makes `target` a verified copy of object `key`: reused when it is already there and
    /// matches `sha256` (or was verified earlier in this process), else downloaded. A download
    /// is flushed to disk before it is renamed into place only when no `sha256` is pinned: a
    /// pinned file is reused only once its checksum is checked again, so one cut short by a
    /// crash is fetched again, and a cold start does not wait on the disk.
    pub async fn fetch_object(
        &self,
        key: &str,
        target: &Path,
        sha256: Option<&str>,
    ) -> Result<Fetched> {
        if self.reusable(target, sha256).await? {
            return Ok(Fetched::Reused);
        }
        let location = self.location(key);
        let response = self
            .get_object(key)
            .await?
            .ok_or_else(|| no_such_key(&location))?;
        let part = unique_part_path(target);
        let result = async {
            let mut file = tokio::fs::File::create(&part)
                .await
                .map_err(InferenceError::io(&part))?;
            let mut hasher = Sha256::new();
            let mut bytes = 0u64;
            let mut body = response.body;
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| InferenceError::Store(format!("{location}: {e}")))?
            {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                file.write_all(&chunk)
                    .await
                    .map_err(InferenceError::io(&part))?;
            }
            match sha256 {
                Some(expected) => {
                    same_checksum(&location, expected, hex::encode(hasher.finalize()))?
                }
                // Flushed only when unpinned: see fetch_object.
                None => file.sync_all().await.map_err(InferenceError::io(&part))?,
            }
            Ok(bytes)
        }
        .await;
        self.settle(&part, target, result).await
    }

    /// [`S3Store::fetch_object`] for an object of `size` bytes: one larger than [`PART_BYTES`]
    /// comes as ranged GETs of that size, [`PART_CONCURRENCY`] at once, each written at its
    /// offset, then the whole file is verified against `sha256` before it is renamed into place.
    pub async fn fetch_object_sized(
        &self,
        key: &str,
        target: &Path,
        sha256: Option<&str>,
        size: u64,
    ) -> Result<Fetched> {
        if size <= PART_BYTES {
            return self.fetch_object(key, target, sha256).await;
        }
        if self.reusable(target, sha256).await? {
            return Ok(Fetched::Reused);
        }
        let location = self.location(key);
        let part = unique_part_path(target);
        let result = async {
            let file = std::fs::File::create(&part).map_err(InferenceError::io(&part))?;
            file.set_len(size).map_err(InferenceError::io(&part))?;
            let file = std::sync::Arc::new(file);
            let ranges: Vec<(u64, u64)> = (0..size.div_ceil(PART_BYTES))
                .map(|i| (i * PART_BYTES, ((i + 1) * PART_BYTES).min(size)))
                .collect();
            futures_util::stream::iter(ranges)
                .map(|(start, end)| {
                    let (file, part) = (file.clone(), part.clone());
                    let location = &location;
                    async move {
                        let response = self
                            .client
                            .get_object()
                            .bucket(&self.bucket)
                            .key(key)
                            .range(format!("bytes={start}-{}", end - 1))
                            .send()
                            .await
                            .map_err(|e| self.sdk_error(key, e))?;
                        let mut body = response.body;
                        let mut offset = start;
                        while let Some(chunk) = body
                            .try_next()
                            .await
                            .map_err(|e| InferenceError::Store(format!("{location}: {e}")))?
                        {
                            use std::os::unix::fs::FileExt;
                            file.write_all_at(&chunk, offset)
                                .map_err(InferenceError::io(&part))?;
                            offset += chunk.len() as u64;
                        }
                        if offset != end {
                            return Err(InferenceError::Store(format!(
                                "{location}: bytes {start}-{end} came back short ({offset})"
                            )));
                        }
                        Ok::<_, InferenceError>(())
                    }
                })
                .buffer_unordered(PART_CONCURRENCY)
                .try_collect::<Vec<()>>()
                .await?;
            if sha256.is_none() {
                // Flushed only when unpinned: see fetch_object.
                file.sync_all().map_err(InferenceError::io(&part))?;
            }
            if let Some(expected) = sha256 {
                let checked = part.clone();
                let actual = tokio::task::spawn_blocking(move || sha256_file(&checked))
                    .await
                    .map_err(|e| InferenceError::Store(format!("{location}: {e}")))?
                    .map_err(InferenceError::Models)?;
                same_checksum(&location, expected, actual)?;
            }
            Ok(size)
        }
        .await;
        self.settle(&part, target, result).await
    }

    /// [`S3Store::fetch_object`] for an object stored gzip-compressed: it is read whole and
    /// inflated into place, and the inflated bytes are verified against `sha256`. Reports the
    /// compressed bytes as downloaded.
    pub async fn fetch_gzip_object(
        &self,
        key: &str,
        target: &Path,
        sha256: Option<&str>,
    ) -> Result<Fetched> {
        if self.reusable(target, sha256).await? {
            return Ok(Fetched::Reused);
        }
        let location = self.location(key);
        let compressed = self
            .get_bytes(key)
            .await?
            .ok_or_else(|| no_such_key(&location))?;
        let stored = compressed.len() as u64;
        let part = unique_part_path(target);
        let written = part.clone();
        let inflated = tokio::task::spawn_blocking(move || inflate_into(&compressed, &written))
            .await
            .map_err(|e| InferenceError::Store(format!("{location}: {e}")))
            .and_then(|inflated| inflated);
        let result = inflated.and_then(|actual| {
            if let Some(expected) = sha256 {
                same_checksum(&location, expected, actual)?;
            }
            Ok(stored)
        });
        self.settle(&part, target, result).await
    }

    /// Whether `target` is already a verified copy (seen in this process, or on disk with
    /// `sha256`); else makes sure its folder exists for the download.
    async fn reusable(&self, target: &Path, sha256: Option<&str>) -> Result<bool> {
        if self.verified.lock().expect("lock").contains(target)
            || (target.is_file() && file_matches(target, sha256).await?)
        {
            self.verified
                .lock()
                .expect("lock")
                .insert(target.to_path_buf());
            return Ok(true);
        }
        if let Some(parent) = target.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(InferenceError::io(parent))?;
        }
        Ok(false)
    }

    /// Ends a download into `part`: when it succeeded (verified), renames it into `target`
    /// and remembers `target` as verified; when it failed, removes `part`.
    async fn settle(&self, part: &Path, target: &Path, downloaded: Result<u64>) -> Result<Fetched> {
        let renamed = match downloaded {
            Ok(bytes) => tokio::fs::rename(part, target)
                .await
                .map(|()| bytes)
                .map_err(InferenceError::io(target)),
            Err(e) => Err(e),
        };
        match renamed {
            Ok(bytes) => {
                self.verified
                    .lock()
                    .expect("lock")
                    .insert(target.to_path_buf());
                Ok(Fetched::Downloaded { bytes })
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(part).await;
                Err(e)
            }
        }
    }

    /// An SDK error of a call on object `key`, naming the object.
    fn sdk_error<E, R>(&self, key: &str, e: aws_sdk_s3::error::SdkError<E, R>) -> InferenceError
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        InferenceError::Store(format!(
            "{}: {}",
            self.location(key),
            aws_sdk_s3::error::DisplayErrorContext(e)
        ))
    }

    /// The body of object `key` from byte `from` to its end, as a stream (a ranged GET).
    pub async fn read_from(&self, key: &str, from: u64) -> Result<ByteStream> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={from}-"))
            .send()
            .await
            .map_err(|e| self.sdk_error(key, e))?;
        Ok(response.body)
    }

    /// The size in bytes of object `key` (HeadObject).
    pub async fn size(&self, key: &str) -> Result<u64> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.sdk_error(key, e))?;
        Ok(head.content_length().unwrap_or(0).max(0) as u64)
    }

    /// GetObject, or `None` when there is no such key.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.sdk_error(key, e)),
        }
    }

    /// The whole body of a small object, or `None` when there is no such key.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let location = self.location(key);
        let Some(response) = self.get_object(key).await? else {
            return Ok(None);
        };
        let bytes = response
            .body
            .collect()
            .await
            .map_err(|e| InferenceError::Store(format!("{location}: {e}")))?;
        Ok(Some(bytes.to_vec()))
    }

    /// Uploads a local file as object `key`.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<()> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
            .await
            .map_err(|e| InferenceError::Store(format!("{}: {e}", path.display())))?;
        self.put(key, body).await
    }

    /// Uploads bytes as object `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.put(key, bytes.into()).await
    }

    async fn put(&self, key: &str, body: aws_sdk_s3::primitives::ByteStream) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .send()
            .await
            .map_err(|e| self.sdk_error(key, e))?;
        Ok(())
    }
}

/// What [`S3Store::fetch_object`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The local copy was already there and verified.
    Reused,
    /// The object was downloaded and verified.
    Downloaded { bytes: u64 },
}

#[async_trait]
impl WeightStore for S3Store {
    fn describe(&self) -> String {
        format!(
            "s3://{}/{} (cache {})",
            self.bucket,
            self.prefix,
            self.cache_dir.display()
        )
    }

    async fn fetch(&self, entry: &ModelEntry) -> Result<PathBuf> {
        let dir = self.cache_dir.join(&entry.id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(InferenceError::io(&dir))?;
        for spec in &entry.files {
            self.fetch_file(entry, spec, &dir).await?;
        }
        Ok(dir)
    }
}

fn unique_part_path(target: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.{n}.part", std::process::id()))
}

/// Inflates gzip `compressed` into a new file `path` (synced to disk); returns the sha256 of
/// the inflated bytes.
fn inflate_into(compressed: &[u8], path: &Path) -> Result<String> {
    use std::io::{Read, Write};
    let mut decoder = flate2::read::GzDecoder::new(compressed);
    let mut file = std::fs::File::create(path).map_err(InferenceError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = decoder
            .read(&mut buffer)
            .map_err(|e| InferenceError::Store(format!("{}: not gzip: {e}", path.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        file.write_all(&buffer[..n])
            .map_err(InferenceError::io(path))?;
    }
    file.sync_all().map_err(InferenceError::io(path))?;
    Ok(hex::encode(hasher.finalize()))
}
