use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::ModelsError;

/// The lowercase hex sha256 of a file, streamed (weights can be large).
pub fn sha256_file(path: &Path) -> Result<String, ModelsError> {
    let mut file = std::fs::File::open(path).map_err(ModelsError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(ModelsError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks a file against an expected sha256; a missing file or a mismatch is an error.
pub fn verify_file(path: &Path, expected: &str) -> Result<(), ModelsError> {
    if !path.is_file() {
        return Err(ModelsError::MissingFile(path.to_path_buf()));
    }
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ModelsError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("abc");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2 test vector for "abc".
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&path).unwrap(), expected);
        verify_file(&path, expected).unwrap();
        assert!(matches!(
            verify_file(&path, &"0".repeat(64)),
            Err(ModelsError::ChecksumMismatch { .. })
        ));
        assert!(matches!(
            verify_file(&dir.path().join("missing"), expected),
            Err(ModelsError::MissingFile(_))
        ));
    }
}
