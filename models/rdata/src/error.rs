//! The error type shared by every layer.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Everything that can go wrong while reading a lazy-load database.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RDataError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The index has no object by that name.
    #[error("table `{table}` is not in the lazy-load index")]
    TableNotFound { table: String },
    /// The `.rdx` file parsed, but is not shaped like a lazy-load index.
    #[error("bad lazy-load index {path}: {detail}")]
    BadIndex { path: PathBuf, detail: String },
    /// An index entry points outside the `.rdb` file.
    #[error(
        "{context}: entry [offset {offset}, length {length}] does not fit in the .rdb file ({file_len} bytes)"
    )]
    EntryOutOfRange {
        context: String,
        offset: u64,
        length: u64,
        file_len: u64,
    },
    /// A compressed stream was corrupt or had the wrong size.
    #[error("{context}: {method} decompression failed: {detail}")]
    Decompress {
        context: String,
        method: &'static str,
        detail: String,
    },
    /// A compression method this crate does not implement (e.g. bzip2).
    #[error("{context}: unsupported compression: {detail}")]
    UnsupportedCompression { context: String, detail: String },
    /// The R serialization stream is truncated or inconsistent.
    #[error("{context}: malformed R serialization at byte {offset}: {detail}")]
    Malformed {
        context: String,
        offset: usize,
        detail: String,
    },
    /// A SEXP type this reader does not decode (e.g. bytecode).
    #[error("{context}: unsupported SEXP type {sexptype} ({name}) at byte {offset}")]
    UnsupportedSexp {
        context: String,
        sexptype: u8,
        name: &'static str,
        offset: usize,
    },
    /// An ALTREP class this reader cannot expand.
    #[error("{context}: unsupported ALTREP class `{class}` at byte {offset}")]
    UnsupportedAltrep {
        context: String,
        class: String,
        offset: usize,
    },
    /// The object was read but is not a data frame.
    #[error("table `{table}` is not a data.frame: {detail}")]
    NotADataFrame { table: String, detail: String },
    /// A column has a type or length that cannot be turned into a [`Column`](crate::Column).
    #[error("table `{table}`, column `{column}`: {detail}")]
    BadColumn {
        table: String,
        column: String,
        detail: String,
    },
    /// Writing CSV output failed.
    #[error("CSV output failed: {0}")]
    Csv(#[from] csv::Error),
}

pub(crate) type Result<T> = std::result::Result<T, RDataError>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RDataError + '_ {
    move |source| RDataError::Io {
        path: path.to_path_buf(),
        source,
    }
}
