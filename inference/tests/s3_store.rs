//! The S3 weight store against a real S3-compatible server (s3s-fs, served in
//! process on 127.0.0.1 with SigV4 checking): download, checksum, reuse,
//! corrupted and missing objects, concurrent cold starts.

use std::path::{Path, PathBuf};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use candle_core::Device;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mesh_inference::classifier::DistilBertClassifier;
use mesh_inference::store::{S3Store, WeightStore};
use mesh_inference::InferenceError;
use mesh_models::{sha256_file, Architecture, FileSpec, ModelEntry, ModelsError, Source};

const ACCESS_KEY: &str = "AKIAMESHTEST";
const SECRET_KEY: &str = "mesh-test-secret-key";
const BUCKET: &str = "msp-intelligence-models";

/// Starts s3s-fs over `root` on an ephemeral loopback port; returns its URL.
async fn start_s3(root: &Path) -> String {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = s3s::service::S3ServiceBuilder::new(fs);
    builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                break;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    format!("http://{addr}")
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn tiny_model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/distilbert_tiny")
}

/// A manifest entry for the tiny classifier, pinned to its files' real checksums.
fn entry() -> ModelEntry {
    let dir = tiny_model_dir();
    let files = ["config.json", "model.safetensors"]
        .iter()
        .map(|f| FileSpec {
            name: f.to_string(),
            sha256: Some(sha256_file(&dir.join(f)).unwrap()),
        })
        .collect();
    ModelEntry {
        id: "tiny-distilbert".into(),
        version: "1".into(),
        architecture: Architecture::Distilbert,
        task: "classification".into(),
        description: "test".into(),
        license: "test".into(),
        pooling: None,
        normalize: false,
        max_seq_length: None,
        labels: vec![],
        source: Source::Derived {
            from: "x".into(),
            recipe: "x".into(),
        },
        hub_repo: None,
        hub_revision: None,
        files,
    }
}

async fn upload(client: &aws_sdk_s3::Client) {
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    for f in ["config.json", "model.safetensors"] {
        client
            .put_object()
            .bucket(BUCKET)
            .key(format!("models/tiny-distilbert/{f}"))
            .body(
                ByteStream::from_path(tiny_model_dir().join(f))
                    .await
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_verifies_loads_and_reuses() {
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let endpoint = start_s3(s3_root.path()).await;
    let client = client(&endpoint);
    upload(&client).await;

    let store = S3Store::new(
        client.clone(),
        BUCKET.into(),
        "models".into(),
        cache.path().into(),
    );
    let dir = store.fetch(&entry()).await.unwrap();
    assert_eq!(listing(&dir), vec!["config.json", "model.safetensors"]);
    let model = DistilBertClassifier::load_dir(&dir, &Device::Cpu).unwrap();
    assert_eq!(model.labels().len(), 3);

    // A later cold start on the same /tmp reuses the verified files: it works even
    // with the objects gone from the bucket.
    std::fs::remove_dir_all(s3_root.path().join(BUCKET).join("models")).unwrap();
    let again = S3Store::new(client, BUCKET.into(), "models".into(), cache.path().into());
    assert_eq!(again.fetch(&entry()).await.unwrap(), dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_object_fails_its_checksum_and_leaves_nothing() {
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let endpoint = start_s3(s3_root.path()).await;
    let client = client(&endpoint);
    upload(&client).await;
    // A different, well-formed object under the weights' key (a bad upload or a
    // tampered bucket): S3's own checksums agree with it, only the manifest's sha256 does not.
    let mut bytes = std::fs::read(tiny_model_dir().join("model.safetensors")).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    client
        .put_object()
        .bucket(BUCKET)
        .key("models/tiny-distilbert/model.safetensors")
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();

    let store = S3Store::new(client, BUCKET.into(), "models".into(), cache.path().into());
    let err = store.fetch(&entry()).await.unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::Models(ModelsError::ChecksumMismatch { .. })
        ),
        "unexpected error: {err}"
    );
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    // Nothing that could be loaded is left: no weights file, no partial download.
    let model_dir = cache.path().join("tiny-distilbert");
    assert_eq!(
        listing(&model_dir),
        vec!["config.json"],
        "only the verified file remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_corrupted_at_rest_is_rejected_and_leaves_nothing() {
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let endpoint = start_s3(s3_root.path()).await;
    let client = client(&endpoint);
    upload(&client).await;
    // Flip bytes of the stored file behind the server's back (s3s-fs keeps plain files).
    // Either the SDK's response checksum or our sha256 catches it, mid-stream or at the end.
    let object = s3_root
        .path()
        .join(BUCKET)
        .join("models/tiny-distilbert/model.safetensors");
    let mut bytes = std::fs::read(&object).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();

    let store = S3Store::new(client, BUCKET.into(), "models".into(), cache.path().into());
    let err = store.fetch(&entry()).await.unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    let model_dir = cache.path().join("tiny-distilbert");
    assert_eq!(
        listing(&model_dir),
        vec!["config.json"],
        "only the verified file remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_object_is_a_clear_error() {
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let endpoint = start_s3(s3_root.path()).await;
    let client = client(&endpoint);
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    let store = S3Store::new(client, BUCKET.into(), "models".into(), cache.path().into());
    let err = store.fetch(&entry()).await.unwrap_err().to_string();
    assert!(
        err.contains("s3://msp-intelligence-models/models/tiny-distilbert/config.json"),
        "{err}"
    );
    assert!(err.contains("NoSuchKey"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_starts_share_one_cache_safely() {
    let s3_root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let endpoint = start_s3(s3_root.path()).await;
    let client = client(&endpoint);
    upload(&client).await;
    // Independent stores (as separate processes would be) racing on one cache folder.
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let store = S3Store::new(
                client.clone(),
                BUCKET.into(),
                "models".into(),
                cache.path().into(),
            );
            tokio::spawn(async move { store.fetch(&entry()).await })
        })
        .collect();
    let mut dirs = Vec::new();
    for t in tasks {
        dirs.push(t.await.unwrap().unwrap());
    }
    let dir = cache.path().join("tiny-distilbert");
    assert!(dirs.iter().all(|d| d == &dir));
    // Every racer renamed or removed its temporary file: only verified files remain.
    assert_eq!(listing(&dir), vec!["config.json", "model.safetensors"]);
    for f in entry().files {
        assert_eq!(sha256_file(&dir.join(&f.name)).unwrap(), f.sha256.unwrap());
    }
}
