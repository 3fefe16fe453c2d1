//! Read a data frame out of an R package's lazy-load database.
//!
//! An installed R package with `LazyData: true` keeps its data sets in
//! `data/Rdata.rdx` (the index) and `data/Rdata.rdb` (the values).
//!
//! * **`.rdx`** is an ordinary `saveRDS` file: gzip, xz or uncompressed,
//!   holding an R serialization of `list(variables = , references = ,
//!   compressed = )`. `variables` is a named list with one `c(offset, length)`
//!   integer pair per object; `compressed` says how entries are packed
//!   (`FALSE`/0 none, `TRUE`/1 zlib, 2 bzip2, 3 xz).
//! * **`.rdb`** is a concatenation of entries. The entry for an object is the
//!   byte range `[offset, offset + length)`. Unless `compressed` is 0, it starts
//!   with the uncompressed size as a 4-byte big-endian integer. For
//!   `compressed = 1` a zlib stream follows directly; for 2 and 3 a type byte
//!   comes first: `'Z'` raw LZMA2 (no `.xz` container; R encodes it with
//!   `lzma_raw_encoder`, preset `9 | extreme`), `'2'` bzip2, `'1'` zlib,
//!   `'0'` stored.
//! * The decompressed bytes are an R serialization in XDR (big-endian) format,
//!   version 2 or 3: `"X\n"`, three header integers (plus the native encoding
//!   name in version 3), then a tree of items. Each item starts with a flags
//!   integer: SEXP type in the low byte, then "is object" (bit 8), "has
//!   attributes" (bit 9), "has tag" (bit 10) and the `gp` levels (bits 12..),
//!   which for strings carry the encoding. Symbols and environments go into a
//!   reference table that later `REFSXP` items point back to.
//!
//! A data frame is a `VECSXP` (list) of equal-length columns with `names`,
//! `class` containing `"data.frame"` and `row.names` (often in the compact
//! `c(NA_integer_, -n)` form).
//!
//! Column mapping ([`ColumnValues`]):
//! * integer and double vectors become [`ColumnValues::Numeric`]; R's
//!   `NA_integer_` (`i32::MIN`) and `NA_real_` (a NaN with payload 1954) become
//!   `None`. Other NaNs stay `Some(NaN)`, as R tells `NaN` and `NA` apart.
//!   Classes on numeric columns (`Date`, `POSIXct`, ...) are ignored: the raw
//!   number is returned.
//! * factors (integer codes with a `levels` attribute and class `"factor"`,
//!   ordered or not) and character vectors become [`ColumnValues::Text`], a
//!   factor cell being its level's label.
//! * logical vectors become [`ColumnValues::Text`] with `"TRUE"` / `"FALSE"`,
//!   as R's `write.csv` prints them.
//!
//! Some ALTREP compact forms are expanded (`compact_intseq`,
//! `compact_realseq`, `wrap_*`, `deferred_string`); any other ALTREP class,
//! bytecode and the like give an error naming what was met.
//!
//! bzip2-compressed entries (`compressed = 2` with type byte `'2'`) are
//! reported as [`RDataError::UnsupportedCompression`].
//!
//! Malformed input gives an error, never a panic: lengths are checked against
//! the bytes left, nesting is capped at 128 levels, LZMA2 chunk headers must
//! add up to the entry's declared size before decoding starts, and compact
//! sequences longer than 2^28 are refused.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
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
    /// A compression method this module does not implement (e.g. bzip2).
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
    /// A column has a type or length that cannot be turned into a [`Column`].
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

type Result<T> = std::result::Result<T, RDataError>;

// ---------------------------------------------------------------------------
// Public data model
// ---------------------------------------------------------------------------

/// A data frame: named, equal-length columns in R's order.
#[derive(Debug, Clone, PartialEq)]
pub struct DataFrame {
    pub columns: Vec<Column>,
}

/// One named column.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub values: ColumnValues,
}

/// Column cells; `None` is R's `NA`. See the module docs for the type mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnValues {
    /// Integer or double vectors.
    Numeric(Vec<Option<f64>>),
    /// Character vectors, factor labels, and logicals as `"TRUE"`/`"FALSE"`.
    Text(Vec<Option<String>>),
}

impl ColumnValues {
    /// Number of cells.
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Numeric(v) => v.len(),
            ColumnValues::Text(v) => v.len(),
        }
    }

    /// Whether there are no cells.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cells, if this is a numeric column.
    pub fn as_numeric(&self) -> Option<&[Option<f64>]> {
        match self {
            ColumnValues::Numeric(v) => Some(v),
            ColumnValues::Text(_) => None,
        }
    }

    /// The cells, if this is a text column.
    pub fn as_text(&self) -> Option<&[Option<String>]> {
        match self {
            ColumnValues::Text(v) => Some(v),
            ColumnValues::Numeric(_) => None,
        }
    }
}

impl DataFrame {
    /// Number of rows (the length of the first column; 0 without columns).
    pub fn n_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.columns.len()
    }

    /// The first column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names in order.
    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// Write a header row and one record per row. Missing cells are empty
    /// fields; numbers use Rust's shortest round-trip form (`10`, `265.1`),
    /// non-finite ones `NaN`, `Inf`, `-Inf`.
    pub fn write_csv<W: io::Write>(&self, w: W) -> Result<()> {
        let mut out = csv::Writer::from_writer(w);
        out.write_record(self.columns.iter().map(|c| c.name.as_bytes()))?;
        let mut record: Vec<String> = Vec::with_capacity(self.columns.len());
        for row in 0..self.n_rows() {
            record.clear();
            for col in &self.columns {
                record.push(match &col.values {
                    ColumnValues::Numeric(v) => match v.get(row).copied().flatten() {
                        Some(x) => format_number(x),
                        None => String::new(),
                    },
                    ColumnValues::Text(v) => v.get(row).cloned().flatten().unwrap_or_default(),
                });
            }
            out.write_record(&record)?;
        }
        out.flush().map_err(csv::Error::from)?;
        Ok(())
    }
}

fn format_number(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "Inf" } else { "-Inf" }.to_string()
    } else {
        x.to_string()
    }
}

// ---------------------------------------------------------------------------
// Public entry points
// ---------------------------------------------------------------------------

/// Names of all objects in the lazy-load index, in index order. (Every object
/// is listed; not all of them need be data frames.)
pub fn list_lazyload_tables(rdx: &Path) -> Result<Vec<String>> {
    Ok(read_index(rdx)?
        .variables
        .into_iter()
        .map(|v| v.name)
        .collect())
}

/// Read the data frame `name` from a lazy-load database.
pub fn read_lazyload_table(rdx: &Path, rdb: &Path, name: &str) -> Result<DataFrame> {
    let index = read_index(rdx)?;
    let entry = index
        .variables
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| RDataError::TableNotFound {
            table: name.to_string(),
        })?;
    let context = format!("table `{name}` in {}", rdb.display());
    let raw = read_range(rdb, entry.offset, entry.length, &context)?;
    let bytes = decode_entry(&raw, index.compressed, &context)?;
    let node = parse_serialized(&bytes, &context)?;
    to_data_frame(node, name)
}

// ---------------------------------------------------------------------------
// Index (.rdx) and entries (.rdb)
// ---------------------------------------------------------------------------

/// Ceiling on a decompressed `.rdx` file; real ones are a few kilobytes.
const MAX_INDEX_BYTES: usize = 256 << 20;

struct IndexEntry {
    name: String,
    offset: u64,
    length: u64,
}

struct LazyIndex {
    variables: Vec<IndexEntry>,
    compressed: i64,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RDataError + '_ {
    move |source| RDataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_index(rdx: &Path) -> Result<LazyIndex> {
    let mut file = File::open(rdx).map_err(io_err(rdx))?;
    let mut raw = Vec::new();
    (&mut file)
        .take(MAX_INDEX_BYTES as u64)
        .read_to_end(&mut raw)
        .map_err(io_err(rdx))?;
    let context = format!("index {}", rdx.display());
    let bytes = decompress_rds(&raw, &context)?;
    let node = parse_serialized(&bytes, &context)?;
    let bad = |detail: String| RDataError::BadIndex {
        path: rdx.to_path_buf(),
        detail,
    };

    let top = named_list(&node).ok_or_else(|| bad("top level is not a named list".into()))?;
    let vars = top
        .iter()
        .find(|(n, _)| *n == "variables")
        .map(|(_, v)| *v)
        .ok_or_else(|| bad("no `variables` element".into()))?;
    let vars = named_list(vars).ok_or_else(|| bad("`variables` is not a named list".into()))?;
    let mut variables = Vec::with_capacity(vars.len());
    for (name, key) in vars {
        let pair: Vec<f64> = match &key.value {
            Value::Integer(v) => v.iter().map(|&x| x as f64).collect(),
            Value::Real(v) => v.clone(),
            _ => Vec::new(),
        };
        let ok = |x: f64| x.is_finite() && x >= 0.0 && x <= u64::MAX as f64 && x.fract() == 0.0;
        match pair.as_slice() {
            [o, l] if ok(*o) && ok(*l) => variables.push(IndexEntry {
                name: name.to_string(),
                offset: *o as u64,
                length: *l as u64,
            }),
            _ => {
                return Err(bad(format!(
                    "key of `{name}` is not a c(offset, length) pair"
                )));
            }
        }
    }
    let compressed = match top
        .iter()
        .find(|(n, _)| *n == "compressed")
        .map(|(_, v)| &v.value)
    {
        None => 0, // very old databases: absent means uncompressed
        Some(Value::Logical(v) | Value::Integer(v)) if v.len() == 1 && v[0] != NA_INTEGER => {
            i64::from(v[0])
        }
        Some(Value::Real(v)) if v.len() == 1 && v[0].is_finite() => v[0] as i64,
        Some(_) => return Err(bad("`compressed` is not a single number or logical".into())),
    };
    Ok(LazyIndex {
        variables,
        compressed,
    })
}

/// Undo `saveRDS` compression: gzip, xz, or none (`X\n` header).
fn decompress_rds(raw: &[u8], context: &str) -> Result<Vec<u8>> {
    let fail = |method, detail: String| RDataError::Decompress {
        context: context.to_string(),
        method,
        detail,
    };
    let mut out = CappedSink::new(MAX_INDEX_BYTES);
    if raw.starts_with(&[0x1f, 0x8b]) {
        io::copy(&mut flate2::read::MultiGzDecoder::new(raw), &mut out)
            .map_err(|e| fail("gzip", e.to_string()))?;
        Ok(out.buf)
    } else if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).map_err(|e| fail("xz", e.to_string()))?;
        Ok(out.buf)
    } else if raw.starts_with(b"BZh") {
        Err(RDataError::UnsupportedCompression {
            context: context.to_string(),
            detail: "bzip2-compressed RDS file".into(),
        })
    } else {
        Ok(raw.to_vec())
    }
}

/// A byte sink that fails instead of growing past `limit`.
struct CappedSink {
    buf: Vec<u8>,
    limit: usize,
}

impl CappedSink {
    fn new(limit: usize) -> Self {
        CappedSink {
            buf: Vec::new(),
            limit,
        }
    }
}

impl io::Write for CappedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() > self.limit - self.buf.len() {
            return Err(io::Error::other(format!(
                "output exceeds {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn read_range(path: &Path, offset: u64, length: u64, context: &str) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(RDataError::EntryOutOfRange {
            context: context.to_string(),
            offset,
            length,
            file_len,
        });
    }
    file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut buf = Vec::new();
    file.take(length)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 != length {
        return Err(RDataError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "short read"),
        });
    }
    Ok(buf)
}

/// Turn one `.rdb` entry into serialized bytes, following `compressed`.
fn decode_entry(raw: &[u8], compressed: i64, context: &str) -> Result<Vec<u8>> {
    let unsupported = |detail: String| RDataError::UnsupportedCompression {
        context: context.to_string(),
        detail,
    };
    if compressed == 0 {
        return Ok(raw.to_vec());
    }
    let (size, rest) = match raw {
        [a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest),
        _ => {
            return Err(RDataError::Decompress {
                context: context.to_string(),
                method: "entry header",
                detail: format!("entry is only {} bytes", raw.len()),
            });
        }
    };
    match compressed {
        1 => inflate_zlib(rest, size, context),
        2 | 3 => match rest.split_first() {
            Some((b'Z', body)) => unpack_lzma2(body, size, context),
            Some((b'1', body)) => inflate_zlib(body, size, context),
            Some((b'0', body)) if body.len() == size => Ok(body.to_vec()),
            Some((b'0', body)) => Err(RDataError::Decompress {
                context: context.to_string(),
                method: "stored",
                detail: format!("header says {size} bytes, entry holds {}", body.len()),
            }),
            Some((b'2', _)) => Err(unsupported("bzip2 entry (type byte '2')".into())),
            Some((t, _)) => Err(unsupported(format!("unknown type byte 0x{t:02x}"))),
            None => Err(unsupported("entry has no type byte".into())),
        },
        other => Err(unsupported(format!("`compressed` = {other}"))),
    }
}

fn inflate_zlib(data: &[u8], size: usize, context: &str) -> Result<Vec<u8>> {
    let fail = |detail: String| RDataError::Decompress {
        context: context.to_string(),
        method: "zlib",
        detail,
    };
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() != size {
        return Err(fail(format!(
            "header says {size} bytes, stream gave {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Decode a raw LZMA2 stream. The chunk headers are walked first, so that a
/// stream whose chunks add up to a size other than the header's is rejected
/// before anything is allocated for it.
fn unpack_lzma2(data: &[u8], size: usize, context: &str) -> Result<Vec<u8>> {
    let fail = |detail: String| RDataError::Decompress {
        context: context.to_string(),
        method: "LZMA2",
        detail,
    };
    let total = lzma2_unpacked_size(data).map_err(fail)?;
    if total != size as u64 {
        return Err(fail(format!(
            "header says {size} bytes, LZMA2 chunks hold {total}"
        )));
    }
    let mut out = CappedSink::new(size);
    lzma_rs::lzma2_decompress(&mut &data[..], &mut out).map_err(|e| fail(e.to_string()))?;
    let out = out.buf;
    if out.len() != size {
        return Err(fail(format!(
            "header says {size} bytes, stream gave {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Sum of the unpacked sizes declared by the chunk headers of an LZMA2 stream.
fn lzma2_unpacked_size(data: &[u8]) -> std::result::Result<u64, String> {
    let mut pos = 0usize;
    let mut total = 0u64;
    let be16 = |p: usize| -> std::result::Result<usize, String> {
        match data.get(p..p + 2) {
            Some(&[a, b]) => Ok(usize::from(u16::from_be_bytes([a, b]))),
            _ => Err(format!("truncated chunk header at byte {p}")),
        }
    };
    loop {
        let control = *data
            .get(pos)
            .ok_or_else(|| format!("missing end marker at byte {pos}"))?;
        match control {
            0x00 => return Ok(total),
            0x01 | 0x02 => {
                let n = be16(pos + 1)? + 1;
                total += n as u64;
                pos += 3 + n;
            }
            0x80..=0xff => {
                let unpacked = ((usize::from(control & 0x1f) << 16) | be16(pos + 1)?) + 1;
                let packed = be16(pos + 3)? + 1;
                let props = usize::from(control >= 0xc0);
                total += unpacked as u64;
                pos += 5 + props + packed;
            }
            c => {
                return Err(format!(
                    "invalid LZMA2 control byte 0x{c:02x} at byte {pos}"
                ));
            }
        }
        if pos > data.len() {
            return Err("LZMA2 chunk runs past the end of the entry".into());
        }
    }
}

// ---------------------------------------------------------------------------
// R serialization (XDR) reader
// ---------------------------------------------------------------------------

const NA_INTEGER: i32 = i32::MIN;

/// Defines the SEXP type codes (R's `Rinternals.h` and `serialize.c`) and
/// `sexp_name`, which turns a code into its name for error messages.
macro_rules! sexp_types {
    ($($name:ident = $code:literal),* $(,)?) => {
        $(const $name: u8 = $code;)*
        fn sexp_name(t: u8) -> &'static str {
            match t {
                $($name => stringify!($name),)*
                _ => "unknown",
            }
        }
    };
}

sexp_types! {
    NILSXP = 0, SYMSXP = 1, LISTSXP = 2, CLOSXP = 3, ENVSXP = 4, PROMSXP = 5,
    LANGSXP = 6, SPECIALSXP = 7, BUILTINSXP = 8, CHARSXP = 9, LGLSXP = 10, INTSXP = 13,
    REALSXP = 14, CPLXSXP = 15, STRSXP = 16, DOTSXP = 17, VECSXP = 19, EXPRSXP = 20,
    BCODESXP = 21, EXTPTRSXP = 22, WEAKREFSXP = 23, RAWSXP = 24, S4SXP = 25,
    ALTREP_SXP = 238, ATTRLISTSXP = 239, ATTRLANGSXP = 240, BASEENV_SXP = 241,
    EMPTYENV_SXP = 242, BCREPREF = 243, BCREPDEF = 244, GENERICREFSXP = 245,
    CLASSREFSXP = 246, PERSISTSXP = 247, PACKAGESXP = 248, NAMESPACESXP = 249,
    BASENAMESPACE_SXP = 250, MISSINGARG_SXP = 251, UNBOUNDVALUE_SXP = 252, GLOBALENV_SXP = 253,
    NILVALUE_SXP = 254, REFSXP = 255,
}

const HAS_ATTR_BIT: i32 = 1 << 9;
const HAS_TAG_BIT: i32 = 1 << 10;
const LATIN1_MASK: u32 = 1 << 2;
const BYTES_MASK: u32 = 1 << 1;

/// Deepest item nesting accepted. Data frames need a handful of levels;
/// 128 levels cost well under 1 MiB of stack even in debug builds.
const MAX_DEPTH: usize = 128;
/// Longest ALTREP compact sequence that will be expanded.
const MAX_COMPACT_LEN: f64 = (1u64 << 28) as f64;

/// A decoded R object. Only what data frames need is kept; everything else
/// (environments, closures, language objects, ...) is parsed and then reduced
/// to its type code.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    value: Value,
    attrs: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Null,
    Symbol(String),
    /// A CHARSXP on its own (`None` is `NA_character_`).
    Char(Option<String>),
    /// Pairlist cells as (tag, value); a non-NULL dotted tail is appended
    /// untagged.
    Pairlist(Vec<(Option<String>, Node)>),
    Logical(Vec<i32>),
    Integer(Vec<i32>),
    Real(Vec<f64>),
    Str(Vec<Option<String>>),
    List(Vec<Node>),
    Opaque(u8),
}

impl Node {
    fn new(value: Value) -> Self {
        Node {
            value,
            attrs: Vec::new(),
        }
    }

    fn attr(&self, name: &str) -> Option<&Node> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn type_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "NILSXP",
            Value::Symbol(_) => "SYMSXP",
            Value::Char(_) => "CHARSXP",
            Value::Pairlist(_) => "LISTSXP",
            Value::Logical(_) => "LGLSXP",
            Value::Integer(_) => "INTSXP",
            Value::Real(_) => "REALSXP",
            Value::Str(_) => "STRSXP",
            Value::List(_) => "VECSXP",
            Value::Opaque(t) => sexp_name(*t),
        }
    }

    fn strings(&self) -> Option<&[Option<String>]> {
        match &self.value {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// Elements of a list with a `names` attribute, paired with their names.
fn named_list(node: &Node) -> Option<Vec<(&str, &Node)>> {
    let Value::List(items) = &node.value else {
        return None;
    };
    let names = node.attr("names")?.strings()?;
    if names.len() != items.len() {
        return None;
    }
    Some(
        names
            .iter()
            .map(|n| n.as_deref().unwrap_or(""))
            .zip(items.iter())
            .collect(),
    )
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    context: &'a str,
    refs: Vec<Node>,
    depth: usize,
}

/// Parse a complete serialization (`X\n` header and one item).
fn parse_serialized(buf: &[u8], context: &str) -> Result<Node> {
    let mut r = Reader {
        buf,
        pos: 0,
        context,
        refs: Vec::new(),
        depth: 0,
    };
    match buf.get(..2) {
        Some(b"X\n") => r.pos = 2,
        Some(b"A\n") => return Err(r.malformed("ASCII serialization is not supported")),
        Some(b"B\n") => return Err(r.malformed("native binary serialization is not supported")),
        _ => return Err(r.malformed("missing XDR serialization header `X\\n`")),
    }
    let version = r.int()?;
    let _writer_version = r.int()?;
    let _min_reader_version = r.int()?;
    match version {
        2 => {}
        3 => {
            let n = r.length()?;
            r.take(n)?; // native encoding name
        }
        v => return Err(r.malformed(format!("unsupported serialization version {v}"))),
    }
    r.item()
}

impl<'a> Reader<'a> {
    fn malformed(&self, detail: impl Into<String>) -> RDataError {
        RDataError::Malformed {
            context: self.context.to_string(),
            offset: self.pos,
            detail: detail.into(),
        }
    }

    fn unsupported(&self, t: u8, offset: usize) -> RDataError {
        RDataError::UnsupportedSexp {
            context: self.context.to_string(),
            sexptype: t,
            name: sexp_name(t),
            offset,
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.malformed(format!("need {n} bytes, {} left", self.remaining())));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn int(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A vector length: one non-negative int, or -1 followed by two ints for
    /// long vectors.
    fn length(&mut self) -> Result<usize> {
        let start = self.pos;
        let n = self.int()?;
        let len = match n {
            0.. => n as u64,
            -1 => {
                let hi = self.int()?;
                let lo = self.int()?;
                if hi < 0 || lo < 0 {
                    self.pos = start;
                    return Err(self.malformed("negative long vector length"));
                }
                ((hi as u64) << 32) + lo as u64
            }
            _ => {
                self.pos = start;
                return Err(self.malformed(format!("negative length {n}")));
            }
        };
        usize::try_from(len).map_err(|_| self.malformed("length does not fit in memory"))
    }

    /// A length for `n` elements of at least `min_size` bytes each, checked
    /// against the bytes left so that no absurd allocation is attempted.
    fn checked_length(&mut self, min_size: usize) -> Result<usize> {
        let start = self.pos;
        let n = self.length()?;
        if n.checked_mul(min_size)
            .is_none_or(|bytes| bytes > self.remaining())
        {
            self.pos = start;
            return Err(self.malformed(format!(
                "vector length {n} needs at least {min_size} bytes per element, only {} left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    fn item(&mut self) -> Result<Node> {
        let flags = self.int()?;
        self.item_with_flags(flags)
    }

    fn item_with_flags(&mut self, flags: i32) -> Result<Node> {
        if self.depth >= MAX_DEPTH {
            return Err(self.malformed(format!("objects nested deeper than {MAX_DEPTH} levels")));
        }
        self.depth += 1;
        let result = self.item_body(flags);
        self.depth -= 1;
        result
    }

    /// One item after its flags. Each case lives in its own out-of-line
    /// function so that this frame, which every nesting level repeats, stays
    /// small (debug builds do not share stack slots between match arms).
    fn item_body(&mut self, flags: i32) -> Result<Node> {
        let t = (flags & 0xff) as u8;
        let value = match t {
            NILVALUE_SXP => Value::Null,
            EMPTYENV_SXP | BASEENV_SXP | GLOBALENV_SXP | UNBOUNDVALUE_SXP | MISSINGARG_SXP
            | BASENAMESPACE_SXP => Value::Opaque(t),
            REFSXP => return self.reference(flags),
            PERSISTSXP | PACKAGESXP | NAMESPACESXP => self.persistent(t)?,
            SYMSXP => self.symbol()?,
            ENVSXP => self.environment()?,
            LISTSXP | LANGSXP | CLOSXP | PROMSXP | DOTSXP | ATTRLISTSXP | ATTRLANGSXP => {
                return self.pairlist(flags);
            }
            ALTREP_SXP => return self.altrep(),
            _ => return self.vector(flags),
        };
        Ok(Node::new(value))
    }

    #[inline(never)]
    fn reference(&mut self, flags: i32) -> Result<Node> {
        let mut index = ((flags as u32) >> 8) as usize;
        if index == 0 {
            index = usize::try_from(self.int()?).unwrap_or(0);
        }
        match index.checked_sub(1).and_then(|i| self.refs.get(i)) {
            Some(node) => Ok(node.clone()),
            None => Err(self.malformed(format!(
                "reference {index} but only {} objects in the reference table",
                self.refs.len()
            ))),
        }
    }

    /// PERSISTSXP / PACKAGESXP / NAMESPACESXP: a string vector naming the
    /// object; kept only as a type code.
    #[inline(never)]
    fn persistent(&mut self, t: u8) -> Result<Value> {
        if self.int()? != 0 {
            return Err(self.malformed(format!("bad {} header", sexp_name(t))));
        }
        let n = self.checked_length(8)?;
        for _ in 0..n {
            self.item()?;
        }
        self.refs.push(Node::new(Value::Opaque(t)));
        Ok(Value::Opaque(t))
    }

    #[inline(never)]
    fn symbol(&mut self) -> Result<Value> {
        let name = match self.item()?.value {
            Value::Char(Some(s)) => s,
            Value::Char(None) => "NA".to_string(),
            _ => return Err(self.malformed("symbol name is not a CHARSXP")),
        };
        self.refs.push(Node::new(Value::Symbol(name.clone())));
        Ok(Value::Symbol(name))
    }

    #[inline(never)]
    fn environment(&mut self) -> Result<Value> {
        // Registered before its contents, which may refer back to it.
        self.refs.push(Node::new(Value::Opaque(ENVSXP)));
        let _locked = self.int()?;
        for _ in 0..4 {
            self.item()?; // enclosure, frame, hash table, attributes
        }
        Ok(Value::Opaque(ENVSXP))
    }

    /// Vector-like items, whose attributes (if flagged) follow the payload.
    #[inline(never)]
    fn vector(&mut self, flags: i32) -> Result<Node> {
        let start = self.pos.saturating_sub(4);
        let t = (flags & 0xff) as u8;
        let value = match t {
            EXTPTRSXP | WEAKREFSXP => {
                self.refs.push(Node::new(Value::Opaque(t)));
                if t == EXTPTRSXP {
                    self.item()?; // protected value
                    self.item()?; // tag
                }
                Value::Opaque(t)
            }
            SPECIALSXP | BUILTINSXP => {
                let n = self.checked_length(1)?;
                self.take(n)?;
                Value::Opaque(t)
            }
            CHARSXP => Value::Char(self.charsxp((flags as u32) >> 12)?),
            LGLSXP | INTSXP | REALSXP | CPLXSXP | RAWSXP | STRSXP => self.atomic(t)?,
            VECSXP | EXPRSXP => {
                let n = self.checked_length(4)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.item()?);
                }
                if t == VECSXP {
                    Value::List(v)
                } else {
                    Value::Opaque(t)
                }
            }
            S4SXP => Value::Opaque(t),
            _ => return Err(self.unsupported(t, start)),
        };
        let mut node = Node::new(value);
        if flags & HAS_ATTR_BIT != 0 {
            node.attrs = self.attributes()?;
        }
        Ok(node)
    }

    /// Atomic vectors. Kept out of `item_body` (and out of line) so that the
    /// recursive path through `item_body` keeps a small stack frame.
    #[inline(never)]
    fn atomic(&mut self, t: u8) -> Result<Value> {
        Ok(match t {
            LGLSXP | INTSXP => {
                let n = self.checked_length(4)?;
                let bytes = self.take(n * 4)?;
                let v = bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                if t == LGLSXP {
                    Value::Logical(v)
                } else {
                    Value::Integer(v)
                }
            }
            REALSXP => {
                let n = self.checked_length(8)?;
                let bytes = self.take(n * 8)?;
                Value::Real(
                    bytes
                        .chunks_exact(8)
                        .map(|c| {
                            f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                        })
                        .collect(),
                )
            }
            CPLXSXP | RAWSXP => {
                let size = if t == CPLXSXP { 16 } else { 1 };
                let n = self.checked_length(size)?;
                self.take(n * size)?;
                Value::Opaque(t)
            }
            STRSXP => {
                let n = self.checked_length(8)?;
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    let at = self.pos;
                    let f = self.int()?;
                    if (f & 0xff) as u8 != CHARSXP {
                        self.pos = at;
                        return Err(self.malformed(format!(
                            "string vector element has type {}",
                            sexp_name((f & 0xff) as u8)
                        )));
                    }
                    v.push(self.charsxp((f as u32) >> 12)?);
                    if f & HAS_ATTR_BIT != 0 {
                        self.item()?;
                    }
                }
                Value::Str(v)
            }
            _ => return Err(self.unsupported(t, self.pos)),
        })
    }

    /// The body of a CHARSXP; `levels` carries the encoding flags.
    fn charsxp(&mut self, levels: u32) -> Result<Option<String>> {
        let start = self.pos;
        let n = self.int()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            self.pos = start;
            return Err(self.malformed(format!("CHARSXP length {n}")));
        }
        let bytes = self.take(n as usize)?;
        if levels & LATIN1_MASK != 0 {
            return Ok(Some(bytes.iter().map(|&b| char::from(b)).collect()));
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(_) if levels & BYTES_MASK != 0 => {
                Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
            }
            Err(e) => {
                self.pos = start;
                Err(self.malformed(format!("string is not valid UTF-8: {e}")))
            }
        }
    }

    /// Attributes: a tagged pairlist (or NULL), turned into (name, value).
    fn attributes(&mut self) -> Result<Vec<(String, Node)>> {
        let at = self.pos;
        match self.item()?.value {
            Value::Null => Ok(Vec::new()),
            Value::Pairlist(cells) => Ok(cells
                .into_iter()
                .filter_map(|(tag, v)| tag.map(|t| (t, v)))
                .collect()),
            _ => {
                self.pos = at;
                Err(self.malformed("attributes are not a pairlist"))
            }
        }
    }

    /// Pairlist-shaped items (lists, calls, closures, promises). Cells are
    /// read in a loop rather than by recursion on the CDR, so long lists do
    /// not deepen the stack.
    #[inline(never)]
    fn pairlist(&mut self, first_flags: i32) -> Result<Node> {
        let first_type = (first_flags & 0xff) as u8;
        let mut flags = first_flags;
        let mut cells = Vec::new();
        let mut attrs = Vec::new();
        loop {
            let t = (flags & 0xff) as u8;
            if flags & HAS_ATTR_BIT != 0 || t == ATTRLISTSXP || t == ATTRLANGSXP {
                let a = self.attributes()?;
                if cells.is_empty() {
                    attrs = a;
                }
            }
            let tag = if flags & HAS_TAG_BIT != 0 {
                match self.item()?.value {
                    Value::Symbol(s) => Some(s),
                    _ => None, // e.g. a closure's environment
                }
            } else {
                None
            };
            let car = self.item()?;
            cells.push((tag, car));
            let next = self.int()?;
            let next_type = (next & 0xff) as u8;
            if next_type == LISTSXP || next_type == ATTRLISTSXP {
                flags = next;
                continue;
            }
            let tail = self.item_with_flags(next)?;
            if tail.value != Value::Null {
                cells.push((None, tail));
            }
            break;
        }
        let value = match first_type {
            LISTSXP | ATTRLISTSXP => Value::Pairlist(cells),
            t => Value::Opaque(t),
        };
        Ok(Node { value, attrs })
    }

    /// ALTREP_SXP: class info, state and attributes, expanded to an
    /// ordinary vector for the classes base R writes.
    #[inline(never)]
    fn altrep(&mut self) -> Result<Node> {
        let start = self.pos.saturating_sub(4);
        let info = self.item()?;
        let state = self.item()?;
        let attrs = match self.item()?.value {
            Value::Null => Vec::new(),
            Value::Pairlist(cells) => cells
                .into_iter()
                .filter_map(|(t, v)| t.map(|t| (t, v)))
                .collect(),
            _ => return Err(self.malformed("ALTREP attributes are not a pairlist")),
        };
        let class = match &info.value {
            Value::Pairlist(cells) => match cells.first().map(|(_, v)| &v.value) {
                Some(Value::Symbol(s)) => s.clone(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        let unsupported = |class: &str| RDataError::UnsupportedAltrep {
            context: self.context.to_string(),
            class: if class.is_empty() {
                "<unnamed>".into()
            } else {
                class.into()
            },
            offset: start,
        };
        let bad_state = |what: &str| RDataError::Malformed {
            context: self.context.to_string(),
            offset: start,
            detail: format!("bad state for ALTREP `{class}`: {what}"),
        };
        let value = match class.as_str() {
            "compact_intseq" | "compact_realseq" => {
                let s: Vec<f64> = match &state.value {
                    Value::Real(v) => v.clone(),
                    Value::Integer(v) => v.iter().map(|&x| f64::from(x)).collect(),
                    _ => return Err(bad_state("not numeric")),
                };
                let [n, first, step] = s[..] else {
                    return Err(bad_state("not of length 3"));
                };
                if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= MAX_COMPACT_LEN) {
                    return Err(bad_state("length out of range"));
                }
                if !(first.is_finite() && step.is_finite()) {
                    return Err(bad_state("non-finite start or step"));
                }
                let n = n as usize;
                if class == "compact_realseq" {
                    Value::Real((0..n).map(|i| first + i as f64 * step).collect())
                } else {
                    let last = first + (n.saturating_sub(1)) as f64 * step;
                    let int_ok = |x: f64| {
                        x.fract() == 0.0 && x > f64::from(i32::MIN) && x <= f64::from(i32::MAX)
                    };
                    if !(int_ok(first) && int_ok(step) && int_ok(last)) {
                        return Err(bad_state("sequence leaves the integer range"));
                    }
                    let (first, step) = (first as i64, step as i64);
                    Value::Integer((0..n as i64).map(|i| (first + i * step) as i32).collect())
                }
            }
            "wrap_integer" | "wrap_real" | "wrap_logical" | "wrap_string" | "wrap_list" => {
                match state.value {
                    Value::List(mut parts) if !parts.is_empty() => parts.swap_remove(0).value,
                    _ => return Err(bad_state("not a list(x, meta)")),
                }
            }
            "deferred_string" => {
                let Value::Pairlist(cells) = &state.value else {
                    return Err(bad_state("not a pairlist"));
                };
                let scipen = match cells.get(1).map(|(_, v)| &v.value) {
                    Some(Value::Integer(v)) if v.len() == 1 && v[0] != NA_INTEGER => v[0],
                    _ => 0,
                };
                match cells.first().map(|(_, v)| &v.value) {
                    Some(Value::Integer(v)) => Value::Str(
                        v.iter()
                            .map(|&x| (x != NA_INTEGER).then(|| x.to_string()))
                            .collect(),
                    ),
                    Some(Value::Real(v)) => {
                        Value::Str(v.iter().map(|&x| r_format_double(x, scipen)).collect())
                    }
                    Some(Value::Str(v)) => Value::Str(v.clone()),
                    _ => return Err(bad_state("argument is neither integer nor double")),
                }
            }
            other => return Err(unsupported(other)),
        };
        Ok(Node { value, attrs })
    }
}

fn is_na_real(x: f64) -> bool {
    x.is_nan() && (x.to_bits() & 0xffff_ffff) == 1954
}

/// `as.character()` of one double the way R prints it: up to 15 significant
/// digits, fixed notation unless scientific is shorter by more than `scipen`.
fn r_format_double(x: f64, scipen: i32) -> Option<String> {
    if is_na_real(x) {
        return None;
    }
    if x.is_nan() {
        return Some("NaN".into());
    }
    if x.is_infinite() {
        return Some(if x > 0.0 { "Inf" } else { "-Inf" }.into());
    }
    if x == 0.0 {
        return Some("0".into());
    }
    let sign = if x < 0.0 { "-" } else { "" };
    let sci = format!("{:.14e}", x.abs()); // d.dddddddddddddde<exp>
    let (mantissa, exp) = sci.split_once('e')?;
    let exp: i64 = exp.parse().ok()?;
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let nsig = digits.len() as i64;

    let fixed = if exp >= 0 {
        let int_len = (exp + 1) as usize;
        if digits.len() <= int_len {
            format!("{digits}{}", "0".repeat(int_len - digits.len()))
        } else {
            format!("{}.{}", &digits[..int_len], &digits[int_len..])
        }
    } else {
        format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
    };
    let sci = format!(
        "{}{}{}e{}{:02}",
        &digits[..1],
        if nsig > 1 { "." } else { "" },
        &digits[1..],
        if exp < 0 { "-" } else { "+" },
        exp.abs()
    );
    let body = if fixed.len() as i64 <= sci.len() as i64 + i64::from(scipen) {
        fixed
    } else {
        sci
    };
    Some(format!("{sign}{body}"))
}

// ---------------------------------------------------------------------------
// Node -> DataFrame
// ---------------------------------------------------------------------------

fn class_of(node: &Node) -> Vec<&str> {
    node.attr("class")
        .and_then(Node::strings)
        .map(|v| v.iter().filter_map(|s| s.as_deref()).collect())
        .unwrap_or_default()
}

/// Row count from `row.names`: compact `c(NA, ±n)` or an explicit vector.
fn row_count(node: &Node) -> Option<usize> {
    let rn = node.attr("row.names")?;
    match &rn.value {
        Value::Integer(v) if v.len() == 2 && v[0] == NA_INTEGER && v[1] != NA_INTEGER => {
            Some(v[1].unsigned_abs() as usize)
        }
        Value::Real(v) if v.len() == 2 && is_na_real(v[0]) && v[1].is_finite() => {
            Some(v[1].abs() as usize)
        }
        Value::Integer(v) => Some(v.len()),
        Value::Real(v) => Some(v.len()),
        Value::Str(v) => Some(v.len()),
        _ => None,
    }
}

fn to_data_frame(node: Node, table: &str) -> Result<DataFrame> {
    let not_df = |detail: String| RDataError::NotADataFrame {
        table: table.to_string(),
        detail,
    };
    let class = class_of(&node);
    if !class.contains(&"data.frame") {
        return Err(not_df(format!("{} with class {class:?}", node.type_name())));
    }
    let Value::List(items) = &node.value else {
        return Err(not_df(format!(
            "class data.frame on a {}",
            node.type_name()
        )));
    };
    let names: Vec<String> = match node.attr("names").and_then(Node::strings) {
        Some(n) if n.len() == items.len() => {
            n.iter().map(|s| s.clone().unwrap_or_default()).collect()
        }
        _ => return Err(not_df("missing or mismatched `names`".into())),
    };
    let n_rows = row_count(&node);
    let mut columns = Vec::with_capacity(items.len());
    for (name, item) in names.into_iter().zip(items) {
        let bad = |detail: String| RDataError::BadColumn {
            table: table.to_string(),
            column: name.clone(),
            detail,
        };
        let values = column_values(item).map_err(bad)?;
        if let Some(n) = n_rows.filter(|&n| n != values.len()) {
            return Err(bad(format!(
                "{} values, but row.names says {n} rows",
                values.len()
            )));
        }
        columns.push(Column { name, values });
    }
    if let (None, Some(first)) = (n_rows, columns.first()) {
        let n = first.values.len();
        if let Some(c) = columns.iter().find(|c| c.values.len() != n) {
            return Err(RDataError::BadColumn {
                table: table.to_string(),
                column: c.name.clone(),
                detail: format!("{} values, first column has {n}", c.values.len()),
            });
        }
    }
    Ok(DataFrame { columns })
}

fn column_values(node: &Node) -> std::result::Result<ColumnValues, String> {
    match &node.value {
        Value::Integer(codes) if class_of(node).contains(&"factor") => {
            let levels = node
                .attr("levels")
                .and_then(Node::strings)
                .ok_or("factor without character `levels`")?;
            codes
                .iter()
                .map(|&c| {
                    if c == NA_INTEGER {
                        return Ok(None);
                    }
                    usize::try_from(c)
                        .ok()
                        .and_then(|i| i.checked_sub(1))
                        .and_then(|i| levels.get(i))
                        .cloned()
                        .ok_or_else(|| format!("factor code {c} outside 1..={}", levels.len()))
                })
                .collect::<std::result::Result<_, _>>()
                .map(ColumnValues::Text)
        }
        Value::Integer(v) => Ok(ColumnValues::Numeric(
            v.iter()
                .map(|&x| (x != NA_INTEGER).then_some(f64::from(x)))
                .collect(),
        )),
        Value::Real(v) => Ok(ColumnValues::Numeric(
            v.iter().map(|&x| (!is_na_real(x)).then_some(x)).collect(),
        )),
        Value::Logical(v) => Ok(ColumnValues::Text(
            v.iter()
                .map(|&x| match x {
                    NA_INTEGER => None,
                    0 => Some("FALSE".to_string()),
                    _ => Some("TRUE".to_string()),
                })
                .collect(),
        )),
        Value::Str(v) => Ok(ColumnValues::Text(v.clone())),
        _ => Err(format!("unsupported column type {}", node.type_name())),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    // ----- hand-built streams -------------------------------------------

    /// Builds XDR serialization bytes.
    struct W(Vec<u8>);

    impl W {
        fn new() -> Self {
            // "X\n", version 3, writer R 4.2.2, min reader 3.5.0, encoding "UTF-8"
            let mut w = W(b"X\n".to_vec());
            w.int(3).int(0x0004_0202).int(0x0003_0500).int(5);
            w.0.extend_from_slice(b"UTF-8");
            w
        }
        fn int(&mut self, x: i32) -> &mut Self {
            self.0.extend_from_slice(&x.to_be_bytes());
            self
        }
        fn real(&mut self, x: f64) -> &mut Self {
            self.0.extend_from_slice(&x.to_be_bytes());
            self
        }
        fn chars(&mut self, s: Option<&[u8]>, levels: i32) -> &mut Self {
            self.int(i32::from(CHARSXP) | (levels << 12));
            match s {
                None => self.int(-1),
                Some(b) => {
                    self.int(b.len() as i32);
                    self.0.extend_from_slice(b);
                    self
                }
            }
        }
        fn strs(&mut self, items: &[&str]) -> &mut Self {
            self.int(i32::from(STRSXP)).int(items.len() as i32);
            for s in items {
                self.chars(Some(s.as_bytes()), 1 << 3);
            }
            self
        }
        /// An attribute cell whose tag is a new symbol.
        fn sym_cell(&mut self, name: &str) -> &mut Self {
            self.int(i32::from(LISTSXP) | HAS_TAG_BIT)
                .int(i32::from(SYMSXP));
            self.chars(Some(name.as_bytes()), 1 << 6)
        }
        /// An attribute cell whose tag refers back to symbol number `index`.
        fn ref_cell(&mut self, index: i32) -> &mut Self {
            self.int(i32::from(LISTSXP) | HAS_TAG_BIT)
                .int(i32::from(REFSXP) | (index << 8))
        }
        fn nil(&mut self) -> &mut Self {
            self.int(i32::from(NILVALUE_SXP))
        }
    }

    const IS_OBJECT_BIT: i32 = 1 << 8;
    const NA_REAL_BITS: u64 = 0x7ff0_0000_0000_07a2; // what R writes for NA_real_

    #[test]
    fn intsxp_with_na() {
        let mut w = W::new();
        w.int(i32::from(INTSXP))
            .int(3)
            .int(7)
            .int(NA_INTEGER)
            .int(-2);
        let node = parse_serialized(&w.0, "test").unwrap();
        assert_eq!(node.value, Value::Integer(vec![7, NA_INTEGER, -2]));
        assert_eq!(
            column_values(&node).unwrap(),
            ColumnValues::Numeric(vec![Some(7.0), None, Some(-2.0)])
        );
    }

    #[test]
    fn realsxp_na_vs_nan() {
        let mut w = W::new();
        w.int(i32::from(REALSXP))
            .int(3)
            .real(1.5)
            .real(f64::from_bits(NA_REAL_BITS))
            .real(f64::NAN);
        let node = parse_serialized(&w.0, "test").unwrap();
        let ColumnValues::Numeric(v) = column_values(&node).unwrap() else {
            panic!()
        };
        assert_eq!(v[0], Some(1.5));
        assert_eq!(v[1], None);
        assert!(v[2].unwrap().is_nan());
    }

    #[test]
    fn strsxp_with_na_and_latin1() {
        let mut w = W::new();
        w.int(i32::from(STRSXP)).int(3);
        w.chars(Some(b"a\xc3\xa9"), 1 << 3); // UTF-8 "aé"
        w.chars(None, 0); // NA_character_
        w.chars(Some(b"\xe9t\xe9"), 1 << 2); // latin1 "été"
        let node = parse_serialized(&w.0, "test").unwrap();
        assert_eq!(
            node.value,
            Value::Str(vec![Some("aé".into()), None, Some("été".into())])
        );
    }

    /// data.frame(x = c(1L, NA, 3L), f = factor(c("b", "a", NA)),
    ///            ok = c(TRUE, NA, FALSE)) with compact row.names.
    fn small_frame() -> Vec<u8> {
        let mut w = W::new();
        w.int(i32::from(VECSXP) | IS_OBJECT_BIT | HAS_ATTR_BIT)
            .int(3);
        w.int(i32::from(INTSXP))
            .int(3)
            .int(1)
            .int(NA_INTEGER)
            .int(3);
        // factor: codes + attributes levels (symbol #1), class (symbol #2)
        w.int(i32::from(INTSXP) | IS_OBJECT_BIT | HAS_ATTR_BIT)
            .int(3)
            .int(2)
            .int(1)
            .int(NA_INTEGER);
        w.sym_cell("levels").strs(&["a", "b"]);
        w.sym_cell("class").strs(&["factor"]);
        w.nil();
        w.int(i32::from(LGLSXP))
            .int(3)
            .int(1)
            .int(NA_INTEGER)
            .int(0);
        // data frame attributes: names (#3), row.names (#4), class (ref #2)
        w.sym_cell("names").strs(&["x", "f", "ok"]);
        w.sym_cell("row.names")
            .int(i32::from(INTSXP))
            .int(2)
            .int(NA_INTEGER)
            .int(-3);
        w.ref_cell(2).strs(&["data.frame"]);
        w.nil();
        w.0
    }

    #[test]
    fn compact_row_names_frame_and_csv() {
        let df = to_data_frame(parse_serialized(&small_frame(), "test").unwrap(), "t").unwrap();
        assert_eq!(df.n_rows(), 3);
        assert_eq!(df.column_names(), ["x", "f", "ok"]);
        assert_eq!(
            df.column("f").unwrap().values,
            ColumnValues::Text(vec![Some("b".into()), Some("a".into()), None])
        );
        let mut out = Vec::new();
        df.write_csv(&mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "x,f,ok\n1,b,TRUE\n,a,\n3,,FALSE\n"
        );
    }

    #[test]
    fn row_names_disagreeing_with_columns_is_an_error() {
        let mut bytes = small_frame();
        // the compact row.names' -3 is the 4 bytes before the last class cell
        let pos = bytes
            .windows(8)
            .rposition(|w| w == [0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xfd])
            .unwrap();
        bytes[pos + 7] = 0xfc; // -4
        let err = to_data_frame(parse_serialized(&bytes, "test").unwrap(), "t").unwrap_err();
        assert!(matches!(err, RDataError::BadColumn { .. }), "{err}");
    }

    #[test]
    fn truncated_and_oversized_inputs_are_errors() {
        let full = small_frame();
        for cut in 0..full.len() {
            assert!(
                parse_serialized(&full[..cut], "test").is_err(),
                "cut at {cut}"
            );
        }
        let mut w = W::new();
        w.int(i32::from(REALSXP)).int(i32::MAX);
        let err = parse_serialized(&w.0, "test").unwrap_err();
        assert!(matches!(err, RDataError::Malformed { .. }), "{err}");
        let mut w = W::new();
        w.int(i32::from(REFSXP) | (5 << 8));
        assert!(matches!(
            parse_serialized(&w.0, "test"),
            Err(RDataError::Malformed { .. })
        ));
        let mut w = W::new();
        w.int(i32::from(BCODESXP));
        let err = parse_serialized(&w.0, "test").unwrap_err();
        assert!(err.to_string().contains("BCODESXP"), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut w = W::new();
        for _ in 0..100_000 {
            w.int(i32::from(VECSXP)).int(1);
        }
        w.nil();
        let err = parse_serialized(&w.0, "test").unwrap_err();
        assert!(err.to_string().contains("nested"), "{err}");
    }

    fn altrep_header(w: &mut W, class: &str) {
        w.int(i32::from(ALTREP_SXP));
        w.int(i32::from(LISTSXP))
            .int(i32::from(SYMSXP))
            .chars(Some(class.as_bytes()), 1 << 6);
        w.int(i32::from(LISTSXP))
            .int(i32::from(SYMSXP))
            .chars(Some(b"base"), 1 << 6);
        w.int(i32::from(LISTSXP))
            .int(i32::from(INTSXP))
            .int(1)
            .int(13);
        w.nil();
    }

    #[test]
    fn altrep_compact_intseq() {
        let mut w = W::new();
        altrep_header(&mut w, "compact_intseq");
        w.int(i32::from(REALSXP))
            .int(3)
            .real(4.0)
            .real(5.0)
            .real(1.0);
        w.nil();
        let node = parse_serialized(&w.0, "test").unwrap();
        assert_eq!(node.value, Value::Integer(vec![5, 6, 7, 8]));
    }

    #[test]
    fn altrep_deferred_string_and_unknown_class() {
        let mut w = W::new();
        altrep_header(&mut w, "deferred_string");
        w.int(i32::from(LISTSXP))
            .int(i32::from(REALSXP))
            .int(3)
            .real(100000.0)
            .real(0.1)
            .real(-2.5);
        w.int(i32::from(INTSXP)).int(1).int(0); // dotted tail: scipen
        w.nil();
        let node = parse_serialized(&w.0, "test").unwrap();
        assert_eq!(
            node.value,
            Value::Str(vec![
                Some("1e+05".into()),
                Some("0.1".into()),
                Some("-2.5".into())
            ])
        );

        let mut w = W::new();
        altrep_header(&mut w, "mmap_real");
        w.nil().nil();
        let err = parse_serialized(&w.0, "test").unwrap_err();
        assert!(err.to_string().contains("mmap_real"), "{err}");
    }

    #[test]
    fn r_double_formatting() {
        let f = |x| r_format_double(x, 0).unwrap();
        assert_eq!(f(123456.0), "123456");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(1.0 / 3.0), "0.333333333333333");
        assert_eq!(f(1e15), "1e+15");
        assert_eq!(f(0.1 + 0.2), "0.3");
        assert_eq!(r_format_double(100000.0, 100).unwrap(), "100000");
    }

    #[test]
    fn entry_decoding_zlib_lzma2_stored() {
        use std::io::Write;
        let payload = small_frame();
        let size = (payload.len() as u32).to_be_bytes();

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&payload).unwrap();
        let zlib = z.finish().unwrap();
        let plain_zlib = [&size[..], &zlib].concat();
        assert_eq!(decode_entry(&plain_zlib, 1, "t").unwrap(), payload);

        let mut lz = Vec::new();
        lzma_rs::lzma2_compress(&mut &payload[..], &mut lz).unwrap();
        let xz_entry = [&size[..], b"Z", &lz].concat();
        assert_eq!(decode_entry(&xz_entry, 3, "t").unwrap(), payload);

        let stored = [&size[..], b"0", &payload].concat();
        assert_eq!(decode_entry(&stored, 3, "t").unwrap(), payload);

        let wrong_size = [&(payload.len() as u32 + 1).to_be_bytes()[..], b"Z", &lz].concat();
        assert!(matches!(
            decode_entry(&wrong_size, 3, "t"),
            Err(RDataError::Decompress { .. })
        ));
        let bz = [&size[..], b"2", b"BZh9"].concat();
        assert!(matches!(
            decode_entry(&bz, 2, "t"),
            Err(RDataError::UnsupportedCompression { .. })
        ));
        for cut in 0..xz_entry.len() {
            assert!(decode_entry(&xz_entry[..cut], 3, "t").is_err());
        }
    }

    // ----- the real modeldata package ----------------------------------
    //
    // Expected values come from the Python `rdata` package (1.1.0) + pandas:
    //   python ref/ref.py $DATA mlc_churn ref/mlc_churn.csv
    //   python ref/ref.py $DATA attrition ref/attrition.csv
    //   python ref/values.py
    // (ref.py decodes the .rdb entry with lzma FORMAT_RAW/FILTER_LZMA2, parses
    // it with rdata.parser.parse_data and rdata.conversion.convert, then
    // DataFrame.to_csv; values.py prints rows and sums via pandas.read_csv.)

    /// The pulled `modeldata` data set (`msp-mesh data pull`; `MESH_DATA_DIR` overrides).
    fn modeldata() -> Option<(PathBuf, PathBuf)> {
        let dir = crate::workspace_data_dir().join("modeldata");
        let (rdx, rdb) = (dir.join("Rdata.rdx"), dir.join("Rdata.rdb"));
        assert!(
            rdx.is_file() && rdb.is_file(),
            "no Rdata.rdx/Rdata.rdb in {}: run `msp-mesh data pull` first",
            dir.display()
        );
        Some((rdx, rdb))
    }

    fn num(df: &DataFrame, col: &str, row: usize) -> Option<f64> {
        df.column(col).unwrap().values.as_numeric().unwrap()[row]
    }

    fn text<'a>(df: &'a DataFrame, col: &str, row: usize) -> Option<&'a str> {
        df.column(col).unwrap().values.as_text().unwrap()[row].as_deref()
    }

    fn sum(df: &DataFrame, col: &str) -> f64 {
        df.column(col)
            .unwrap()
            .values
            .as_numeric()
            .unwrap()
            .iter()
            .map(|x| x.unwrap())
            .sum()
    }

    #[test]
    fn modeldata_lists_tables() {
        let Some((rdx, _)) = modeldata() else { return };
        let names = list_lazyload_tables(&rdx).unwrap();
        assert!(names.iter().any(|n| n == "mlc_churn"));
        assert!(names.iter().any(|n| n == "attrition"));
    }

    #[test]
    fn modeldata_mlc_churn() {
        let Some((rdx, rdb)) = modeldata() else {
            return;
        };
        let df = read_lazyload_table(&rdx, &rdb, "mlc_churn").unwrap();
        assert_eq!(df.n_rows(), 5000);
        assert_eq!(
            df.column_names(),
            [
                "state",
                "account_length",
                "area_code",
                "international_plan",
                "voice_mail_plan",
                "number_vmail_messages",
                "total_day_minutes",
                "total_day_calls",
                "total_day_charge",
                "total_eve_minutes",
                "total_eve_calls",
                "total_eve_charge",
                "total_night_minutes",
                "total_night_calls",
                "total_night_charge",
                "total_intl_minutes",
                "total_intl_calls",
                "total_intl_charge",
                "number_customer_service_calls",
                "churn",
            ]
        );
        let churn = df.column("churn").unwrap().values.as_text().unwrap();
        assert_eq!(
            churn.iter().filter(|c| c.as_deref() == Some("yes")).count(),
            707
        );

        // first row
        assert_eq!(text(&df, "state", 0), Some("KS"));
        assert_eq!(num(&df, "account_length", 0), Some(128.0));
        assert_eq!(text(&df, "area_code", 0), Some("area_code_415"));
        assert_eq!(text(&df, "international_plan", 0), Some("no"));
        assert_eq!(text(&df, "voice_mail_plan", 0), Some("yes"));
        assert_eq!(num(&df, "total_day_minutes", 0), Some(265.1));
        assert_eq!(num(&df, "total_day_charge", 0), Some(45.07));
        assert_eq!(num(&df, "total_intl_charge", 0), Some(2.7));
        assert_eq!(text(&df, "churn", 0), Some("no"));
        // row 2500 (index 2499) and the last row
        assert_eq!(text(&df, "state", 2499), Some("CA"));
        assert_eq!(num(&df, "account_length", 2499), Some(120.0));
        assert_eq!(num(&df, "total_eve_charge", 2499), Some(19.22));
        assert_eq!(num(&df, "total_intl_minutes", 2499), Some(13.8));
        assert_eq!(text(&df, "state", 4999), Some("VT"));
        assert_eq!(num(&df, "total_intl_calls", 4999), Some(16.0));
        assert_eq!(num(&df, "total_night_charge", 4999), Some(6.97));
        // column sums (pandas: 501293, 22176, 901444.5)
        assert_eq!(sum(&df, "account_length"), 501293.0);
        assert_eq!(sum(&df, "total_intl_calls"), 22176.0);
        assert!((sum(&df, "total_day_minutes") - 901444.5).abs() < 1e-6);
        // no missing cells anywhere
        for c in &df.columns {
            match &c.values {
                ColumnValues::Numeric(v) => assert!(v.iter().all(Option::is_some), "{}", c.name),
                ColumnValues::Text(v) => assert!(v.iter().all(Option::is_some), "{}", c.name),
            }
        }
    }

    #[test]
    fn modeldata_attrition() {
        let Some((rdx, rdb)) = modeldata() else {
            return;
        };
        let df = read_lazyload_table(&rdx, &rdb, "attrition").unwrap();
        assert_eq!((df.n_rows(), df.n_cols()), (1470, 31));
        assert_eq!(
            df.column_names()[..3],
            ["Age", "Attrition", "BusinessTravel"]
        );
        let attr = df.column("Attrition").unwrap().values.as_text().unwrap();
        assert_eq!(
            attr.iter().filter(|c| c.as_deref() == Some("Yes")).count(),
            237
        );
        assert_eq!(sum(&df, "MonthlyIncome"), 9559309.0);
        assert_eq!(sum(&df, "Age"), 54278.0);
        let edu = df.column("Education").unwrap().values.as_text().unwrap(); // ordered factor
        assert_eq!(
            edu.iter()
                .filter(|c| c.as_deref() == Some("Master"))
                .count(),
            398
        );
        assert_eq!(text(&df, "JobRole", 1469), Some("Laboratory_Technician"));
        assert_eq!(num(&df, "MonthlyIncome", 1469), Some(4404.0));
        assert_eq!(text(&df, "WorkLifeBalance", 1469), Some("Best"));
    }

    #[test]
    fn modeldata_missing_table() {
        let Some((rdx, rdb)) = modeldata() else {
            return;
        };
        let err = read_lazyload_table(&rdx, &rdb, "no_such_table").unwrap_err();
        assert!(matches!(err, RDataError::TableNotFound { .. }), "{err}");
    }
}
