//! The R serialization reader (XDR format, versions 2 and 3): the header,
//! SEXP items, the reference table, attributes and the ALTREP forms base R
//! writes.

use crate::error::{RDataError, Result};

pub(crate) const NA_INTEGER: i32 = i32::MIN;

/// Defines the SEXP type codes (R's `Rinternals.h` and `serialize.c`) and
/// `sexp_name`, which turns a code into its name for error messages.
macro_rules! sexp_types {
    ($($name:ident = $code:literal),* $(,)?) => {
        $(pub(crate) const $name: u8 = $code;)*
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

pub(crate) const HAS_ATTR_BIT: i32 = 1 << 9;
pub(crate) const HAS_TAG_BIT: i32 = 1 << 10;
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
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) attrs: Vec<(String, Node)>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
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

    pub(crate) fn attr(&self, name: &str) -> Option<&Node> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    pub(crate) fn type_name(&self) -> &'static str {
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

    pub(crate) fn strings(&self) -> Option<&[Option<String>]> {
        match &self.value {
            Value::Str(v) => Some(v),
            _ => None,
        }
    }
}

/// Elements of a list with a `names` attribute, paired with their names.
pub(crate) fn named_list(node: &Node) -> Option<Vec<(&str, &Node)>> {
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
pub(crate) fn parse_serialized(buf: &[u8], context: &str) -> Result<Node> {
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

pub(crate) fn is_na_real(x: f64) -> bool {
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

/// Hand-built serialization streams, shared by the tests of every layer.
#[cfg(test)]
pub(crate) mod writer {
    use super::*;

    /// Builds XDR serialization bytes.
    pub(crate) struct W(pub(crate) Vec<u8>);

    impl W {
        pub(crate) fn new() -> Self {
            // "X\n", version 3, writer R 4.2.2, min reader 3.5.0, encoding "UTF-8"
            let mut w = W(b"X\n".to_vec());
            w.int(3).int(0x0004_0202).int(0x0003_0500).int(5);
            w.0.extend_from_slice(b"UTF-8");
            w
        }
        pub(crate) fn int(&mut self, x: i32) -> &mut Self {
            self.0.extend_from_slice(&x.to_be_bytes());
            self
        }
        pub(crate) fn real(&mut self, x: f64) -> &mut Self {
            self.0.extend_from_slice(&x.to_be_bytes());
            self
        }
        pub(crate) fn chars(&mut self, s: Option<&[u8]>, levels: i32) -> &mut Self {
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
        pub(crate) fn strs(&mut self, items: &[&str]) -> &mut Self {
            self.int(i32::from(STRSXP)).int(items.len() as i32);
            for s in items {
                self.chars(Some(s.as_bytes()), 1 << 3);
            }
            self
        }
        /// An attribute cell whose tag is a new symbol.
        pub(crate) fn sym_cell(&mut self, name: &str) -> &mut Self {
            self.int(i32::from(LISTSXP) | HAS_TAG_BIT)
                .int(i32::from(SYMSXP));
            self.chars(Some(name.as_bytes()), 1 << 6)
        }
        /// An attribute cell whose tag refers back to symbol number `index`.
        pub(crate) fn ref_cell(&mut self, index: i32) -> &mut Self {
            self.int(i32::from(LISTSXP) | HAS_TAG_BIT)
                .int(i32::from(REFSXP) | (index << 8))
        }
        pub(crate) fn nil(&mut self) -> &mut Self {
            self.int(i32::from(NILVALUE_SXP))
        }
    }

    const IS_OBJECT_BIT: i32 = 1 << 8;
    pub(crate) const NA_REAL_BITS: u64 = 0x7ff0_0000_0000_07a2; // what R writes for NA_real_

    /// data.frame(x = c(1L, NA, 3L), f = factor(c("b", "a", NA)),
    ///            ok = c(TRUE, NA, FALSE)) with compact row.names.
    pub(crate) fn small_frame() -> Vec<u8> {
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
}

#[cfg(test)]
mod tests {
    use super::writer::*;
    use super::*;

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
}
