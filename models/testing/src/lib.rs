//! Helpers shared by the workspace's tests and benchmarks (a dev-dependency only): where the
//! prepared models and data sets are, whether a model is ready, cosine similarity, and
//! closeness assertions with the largest difference in the message.

use std::path::{Path, PathBuf};

use mesh_models::{verify_dir, Manifest};

/// The models folder tests use: `MESH_MODELS_DIR` when set, else this workspace's
/// `models/store` (where `msp-mesh prepare` puts them).
pub fn workspace_models_dir() -> PathBuf {
    std::env::var_os("MESH_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("models/testing sits in models/")
                .join("store")
        })
}

/// The data folder tests use: `MESH_DATA_DIR` when set, else this workspace's `models/store/data`.
pub fn workspace_data_dir() -> PathBuf {
    std::env::var_os("MESH_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_models_dir().join("data"))
}

/// The prepared folder of model `id`, with a clear panic when it is missing.
pub fn require_local_model(id: &str) -> PathBuf {
    let manifest = Manifest::builtin();
    let entry = manifest.get(id).expect("model is in the manifest");
    let dir = workspace_models_dir().join(id);
    if let Err(e) = verify_dir(entry, &dir) {
        panic!(
            "model `{id}` is not ready in {} ({e}); run `cargo run --bin msp-mesh -- prepare` (scripts/test.sh does)",
            dir.display()
        );
    }
    dir
}

/// Cosine similarity of two vectors, accumulated in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs_diff(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len(), "slices of different lengths");
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| (a - e).abs())
        .fold(0.0, f32::max)
}

/// Panics, naming `what`, the largest difference and where, unless every element of `actual`
/// is within `tolerance` of `expected`.
pub fn assert_all_close(actual: &[f32], expected: &[f32], tolerance: f32, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    let worst = actual
        .iter()
        .zip(expected)
        .enumerate()
        .map(|(i, (a, e))| (i, (a - e).abs()))
        .fold((0, 0.0f32), |w, c| if c.1 > w.1 { c } else { w });
    assert!(
        worst.1 <= tolerance,
        "{what}: element {} is {} against {} (difference {} > {tolerance})",
        worst.0,
        actual[worst.0],
        expected[worst.0],
        worst.1
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_and_closeness_by_hand() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(max_abs_diff(&[1.0, 2.0, 3.0], &[1.0, 2.5, 2.0]), 1.0);
        assert_all_close(&[1.0, 2.0], &[1.0, 2.00001], 1e-4, "near");
        let caught =
            std::panic::catch_unwind(|| assert_all_close(&[1.0, 2.0], &[1.0, 2.1], 1e-4, "far"));
        assert!(caught.is_err());
    }
}
