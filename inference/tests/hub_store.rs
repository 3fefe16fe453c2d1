//! The hub store through `hf-hub`, pointed by `HF_ENDPOINT` at a local static
//! server laid out like the hub (`/{repo}/resolve/{revision}/{file}`, with the
//! `etag`, `x-repo-commit` and range headers the client reads).

mod common;

use std::path::PathBuf;

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use common::{tiny_entry, tiny_model_dir};
use mesh_inference::store::{HubStore, WeightStore};
use mesh_models::sha256_file;

const REPO: &str = "mesh-test/tiny-distilbert";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Serves files of `root` at `/{org}/{name}/resolve/{rev}/{file}` with byte ranges.
async fn resolve(
    State(root): State<PathBuf>,
    UrlPath((org, name, rev, file)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if format!("{org}/{name}") != REPO || rev != "main" {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(bytes) = std::fs::read(root.join(&file)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{}\"", sha256_file(&root.join(&file)).unwrap());
    let total = bytes.len();
    let (start, end) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            Some((
                a.parse::<usize>().ok()?,
                b.parse::<usize>().ok()?.min(total - 1),
            ))
        })
        .unwrap_or((0, total - 1));
    (
        StatusCode::PARTIAL_CONTENT,
        [
            (header::ETAG, etag),
            (
                header::HeaderName::from_static("x-repo-commit"),
                COMMIT.to_string(),
            ),
            (
                header::CONTENT_RANGE,
                format!("bytes {start}-{end}/{total}"),
            ),
        ],
        bytes[start..=end].to_vec(),
    )
        .into_response()
}

async fn start_hub(root: PathBuf) -> String {
    let app = axum::Router::new()
        .route(
            "/{org}/{name}/resolve/{rev}/{file}",
            axum::routing::get(resolve),
        )
        .with_state(root);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetches_from_a_hub_mirror_named_by_hf_endpoint() {
    let endpoint = start_hub(tiny_model_dir()).await;
    // The only test in this binary, so setting the variable races with nothing.
    std::env::set_var("HF_ENDPOINT", &endpoint);
    let cache = tempfile::tempdir().unwrap();
    let store = HubStore::from_env(cache.path().to_path_buf()).unwrap();

    let good = sha256_file(&tiny_model_dir().join("model.safetensors")).unwrap();
    let dir = store.fetch(&tiny_entry(Some(REPO), None)).await.unwrap();
    assert!(
        dir.starts_with(cache.path()),
        "downloaded into the cache: {}",
        dir.display()
    );
    assert_eq!(sha256_file(&dir.join("model.safetensors")).unwrap(), good);
    mesh_inference::classifier::DistilBertClassifier::load_dir(&dir, &candle_core::Device::Cpu)
        .unwrap();

    // A checksum that differs from what the hub serves is an error and the file is dropped.
    let cache2 = tempfile::tempdir().unwrap();
    let store2 = HubStore::from_env(cache2.path().to_path_buf()).unwrap();
    let err = store2
        .fetch(&tiny_entry(Some(REPO), Some("0".repeat(64))))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}
