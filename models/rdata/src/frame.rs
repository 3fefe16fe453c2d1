//! A decoded data.frame as a [`DataFrame`] of [`ColumnValues`] (the type
//! mapping is described in the crate docs), and its CSV output.

use std::io;

use crate::error::{RDataError, Result};
use crate::serialize::{is_na_real, Node, Value, NA_INTEGER};

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

/// Column cells; `None` is R's `NA`. See the crate docs for the type mapping.
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

pub(crate) fn to_data_frame(node: Node, table: &str) -> Result<DataFrame> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serialize::writer::*;
    use crate::serialize::{parse_serialized, INTSXP, REALSXP};

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
}
