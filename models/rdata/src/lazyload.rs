//! The lazy-load database: the `.rdx` index (a named list of
//! `c(offset, length)` keys and the `compressed` mode) and the entry points
//! that read a table out of the `.rdb` file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::container::{decode_entry, decompress_rds, read_range, MAX_INDEX_BYTES};
use crate::error::{io_err, RDataError, Result};
use crate::frame::{to_data_frame, DataFrame};
use crate::serialize::{named_list, parse_serialized, Value, NA_INTEGER};

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
// Index (.rdx)
// ---------------------------------------------------------------------------

struct IndexEntry {
    name: String,
    offset: u64,
    length: u64,
}

struct LazyIndex {
    variables: Vec<IndexEntry>,
    compressed: i64,
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::frame::ColumnValues;

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
        let dir = mesh_testing::workspace_data_dir().join("modeldata");
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
