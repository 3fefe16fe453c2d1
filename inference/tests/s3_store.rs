//! The S3 weight store against a real S3-compatible server (s3s-fs, served in
//! process on 127.0.0.1 with SigV4 checking): download, checksum, reuse,
//! wrong, corrupted and missing objects, concurrent cold starts.

mod common;

use std::path::Path;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use candle_core::Device;
use common::{tiny_entry, tiny_model_dir};
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_inference::classifier::DistilBertClassifier;
use mesh_inference::store::{S3Store, WeightStore};
use mesh_inference::InferenceError;
use mesh_models::{sha256_file, ModelsError};
use tempfile::TempDir;

const ACCESS_KEY: &str = "AKIAMESHTEST";
const SECRET_KEY: &str = "mesh-test-secret-key";
const BUCKET: &str = "msp-intelligence-models";
const WEIGHTS_KEY: &str = "models/tiny-distilbert/model.safetensors";

/// A running S3 server over a temporary folder, a client for it, and an empty download cache.
struct S3Fixture {
    root: TempDir,
    cache: TempDir,
    client: aws_sdk_s3::Client,
}

impl S3Fixture {
    /// Starts s3s-fs on an ephemeral loopback port and creates the bucket; with
    /// `upload`, puts the tiny model's files under `models/tiny-distilbert/`.
    async fn start(upload: bool) -> Self {
        let root = tempfile::tempdir().unwrap();
        let mut builder =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
            .force_path_style(true)
            .build();
        let client = aws_sdk_s3::Client::from_conf(config);
        client.create_bucket().bucket(BUCKET).send().await.unwrap();
        let fixture = Self {
            root,
            cache: tempfile::tempdir().unwrap(),
            client,
        };
        if upload {
            for f in ["config.json", "model.safetensors"] {
                let body = ByteStream::from_path(tiny_model_dir().join(f))
                    .await
                    .unwrap();
                fixture
                    .put(&format!("models/tiny-distilbert/{f}"), body)
                    .await;
            }
        }
        fixture
    }

    async fn put(&self, key: &str, body: ByteStream) {
        self.client
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body)
            .send()
            .await
            .unwrap();
    }

    /// A store as one cold start would build it, on the shared cache folder.
    fn store(&self) -> S3Store {
        S3Store::new(
            self.client.clone(),
            BUCKET.into(),
            "models".into(),
            self.cache.path().into(),
        )
    }

    fn cached(&self) -> Vec<String> {
        listing(&self.cache.path().join("tiny-distilbert"))
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The tiny model's weights with one byte flipped near the end.
fn flipped_weights() -> Vec<u8> {
    let mut bytes = std::fs::read(tiny_model_dir().join("model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_verifies_loads_and_reuses() {
    let s3 = S3Fixture::start(true).await;
    let dir = s3.store().fetch(&tiny_entry(None, None)).await.unwrap();
    assert_eq!(listing(&dir), vec!["config.json", "model.safetensors"]);
    let model = DistilBertClassifier::load_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(model.labels().len(), 3);

    // A later cold start on the same /tmp reuses the verified files: it works even
    // with the objects gone from the bucket.
    std::fs::remove_dir_all(s3.root.path().join(BUCKET).join("models")).unwrap();
    assert_eq!(
        s3.store().fetch(&tiny_entry(None, None)).await.unwrap(),
        dir
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_object_fails_its_checksum_and_leaves_nothing() {
    let s3 = S3Fixture::start(true).await;
    // A different, well-formed object under the weights' key (a bad upload or a
    // tampered bucket): S3's own checksums agree with it, only the manifest's sha256 does not.
    s3.put(WEIGHTS_KEY, ByteStream::from(flipped_weights()))
        .await;
    let err = s3.store().fetch(&tiny_entry(None, None)).await.unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::Models(ModelsError::ChecksumMismatch { .. })
        ),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Nothing that could be loaded is left: no weights file, no partial download.
    assert_eq!(
        s3.cached(),
        vec!["config.json"],
        "only the verified file remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_corrupted_at_rest_is_rejected_and_leaves_nothing() {
    let s3 = S3Fixture::start(true).await;
    // Flip a byte of the stored file behind the server's back (s3s-fs keeps plain files).
    // Either the SDK's response checksum or our sha256 catches it, mid-stream or at the end.
    std::fs::write(
        s3.root.path().join(BUCKET).join(WEIGHTS_KEY),
        flipped_weights(),
    )
    .unwrap();
    let err = s3.store().fetch(&tiny_entry(None, None)).await.unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert_eq!(
        s3.cached(),
        vec!["config.json"],
        "only the verified file remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_object_is_a_clear_error() {
    let s3 = S3Fixture::start(false).await;
    let err = s3
        .store()
        .fetch(&tiny_entry(None, None))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("s3://msp-intelligence-models/models/tiny-distilbert/config.json"),
        "{err}"
    );
    assert!(err.contains("NoSuchKey"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_starts_share_one_cache_safely() {
    let s3 = S3Fixture::start(true).await;
    // Independent stores (as separate processes would be) racing on one cache folder.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = s3.store();
            tokio::spawn(async move { store.fetch(&tiny_entry(None, None)).await })
        })
        .collect();
    let mut dirs = Vec::new();
    for t in tasks {
        dirs.push(t.await.unwrap().unwrap());
    }
    let dir = s3.cache.path().join("tiny-distilbert");
    assert!(dirs.iter().all(|d| d == &dir));
    // Every racer renamed or removed its temporary file: only verified files remain.
    assert_eq!(s3.cached(), vec!["config.json", "model.safetensors"]);
    for f in tiny_entry(None, None).files {
        assert_eq!(sha256_file(&dir.join(&f.name)).unwrap(), f.sha256.unwrap());
    }
}
