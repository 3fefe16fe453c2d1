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
//!
//! The crate is split by layer: `container` undoes the `saveRDS` compression
//! and the `.rdb` entry framing, `serialize` reads the XDR serialization into a
//! tree of items, `frame` maps a data frame onto [`DataFrame`], and `lazyload`
//! reads the index and ties the layers together.

mod container;
mod error;
mod frame;
mod lazyload;
mod serialize;

pub use error::RDataError;
pub use frame::{Column, ColumnValues, DataFrame};
pub use lazyload::{list_lazyload_tables, read_lazyload_table};
