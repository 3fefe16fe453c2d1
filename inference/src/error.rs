use std::path::PathBuf;

/// Errors of the inference layer (models, tokenization, weight stores, the backend worker).
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error("model error: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    #[error("invalid model config {path}: {detail}")]
    Config { path: PathBuf, detail: String },
    #[error("invalid input: {0}")]
    Input(String),
    #[error(transparent)]
    Models(#[from] mesh_models::ModelsError),
    #[error("weight store error: {0}")]
    Store(String),
    #[error("the inference backend has stopped")]
    BackendStopped,
    /// The encoder's queue is full: the caller should retry shortly.
    #[error("the encoder's queue holds {capacity} texts, the most it takes; retry shortly")]
    QueueFull { capacity: usize },
    /// Generation stopped because its caller's stop check turned true (the request is gone).
    #[error("generation stopped after {tokens} tokens: its request is gone")]
    Stopped { tokens: usize },
    /// A batch failed inside the model (not the caller's input).
    #[error("batch failed: {0}")]
    Batch(String),
    /// A capability this binary was built without (a cargo feature).
    #[error(
        "{what} need a build with the `{feature}` feature (`cargo build --features {feature}`)"
    )]
    NotBuilt {
        what: &'static str,
        feature: &'static str,
    },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InferenceError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The error of asking for `what`, which needs the cargo feature `feature` this build lacks.
#[cfg_attr(all(feature = "aws", feature = "hub"), allow(dead_code))]
pub(crate) fn not_built(what: &'static str, feature: &'static str) -> InferenceError {
    InferenceError::NotBuilt { what, feature }
}

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;
