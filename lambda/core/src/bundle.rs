//! The Lambda model bundle: everything the agents read at serve time (the encoder, the
//! trained heads and client-health models, the knowledge data sets, the embedding caches),
//! published to S3 by `msp-mesh bundle push` and synced into `/tmp` at a cold start when
//! `MESH_MODEL_SOURCE=s3://bucket/prefix` holds a bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use mesh_agents::catalogues::{GUIDANCE_FILE, PUBLISHED_DATASET, SERVED_FILES};
use mesh_agents::loader::{
    CLIENT_HEALTH_DIR, CONTROLS_INDEX_PREFIX, EMAIL_HEAD, KNOWLEDGE_INDEX, SENTIMENT_HEAD,
    THREAT_HEAD,
};
use mesh_agents::partners::PARTNERS_INDEX;
use mesh_agents::{AgentKind, AgentSelection};
#[cfg(feature = "aws")]
use mesh_inference::bundle;
use mesh_inference::bundle::{BundleManifest, LocalFile, SyncReport};
#[cfg(feature = "aws")]
use mesh_inference::store::S3Store;
use mesh_inference::store::StoreLocation;
use mesh_models::Manifest;

use crate::config::ModelArgs;

/// Which file names of a data-set folder are bundled.
type NameFilter = fn(&str) -> bool;

/// Data files the agents read, by data-set folder (the rest of each package is left out).
const SERVED_DATA: &[(&str, NameFilter)] = &[
    (
        "attack-enterprise",
        mesh_agents::knowledge::attack::reads_file,
    ),
    ("cwe", |name| name == "cwe-dictionary.json"),
    ("modeldata", |name| {
        name == "Rdata.rdx" || name == "Rdata.rdb"
    }),
];

/// Bundle folders: `models/`, `data/`, `cache/embeddings/`.
const MODELS: &str = "models";
const DATA: &str = "data";
const EMBEDDINGS: &str = "cache/embeddings";

/// The files of a bundle for `args`: the encoder's manifest files, the heads, the
/// client-health models, the served data files and the newest embedding cache per index.
pub fn bundle_files(args: &ModelArgs) -> anyhow::Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    let entry = Manifest::builtin().get(&args.model)?.clone();
    for spec in &entry.files {
        files.push(prepared_file(
            args.models_dir.join(&entry.id).join(&spec.name),
            format!("{MODELS}/{}/{}", entry.id, spec.name),
        )?);
    }
    for dir in [SENTIMENT_HEAD, EMAIL_HEAD, THREAT_HEAD, CLIENT_HEALTH_DIR] {
        let root = args.models_dir.join(dir);
        anyhow::ensure!(
            root.is_dir(),
            "{} is missing; run `msp-mesh prepare` first",
            root.display()
        );
        walk(&root, &format!("{MODELS}/{dir}"), &|_| true, &mut files)?;
    }
    for (set, wanted) in SERVED_DATA {
        let root = args.data_dir.join(set);
        anyhow::ensure!(
            root.is_dir(),
            "{} is missing; run `msp-mesh prepare` first",
            root.display()
        );
        walk(&root, &format!("{DATA}/{set}"), wanted, &mut files)?;
    }
    let published = args.data_dir.join(PUBLISHED_DATASET);
    for relative in SERVED_FILES {
        files.push(prepared_file(
            published.join(relative),
            format!("{DATA}/{PUBLISHED_DATASET}/{relative}"),
        )?);
    }
    let cache = args.embedding_cache_dir();
    for namespace in read_dir_sorted(&cache)?.into_iter().filter(|p| p.is_dir()) {
        let name = file_name(&namespace);
        for file in newest_per_index(&namespace)? {
            files.push(LocalFile {
                path: format!("{EMBEDDINGS}/{name}/{}", file_name(&file)),
                local: file,
            });
        }
    }
    Ok(files)
}

/// Publishes the bundle of `args` to `s3://bucket/prefix`; `started` is told how many files
/// there are, `uploaded` how many are done.
#[cfg(feature = "aws")]
pub async fn push(
    args: &ModelArgs,
    to: &str,
    started: &dyn Fn(usize),
    uploaded: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<BundleManifest> {
    let store = s3_store(to, &args.cache_dir()).await?;
    let files = bundle_files(args)?;
    started(files.len());
    bundle::push(&store, files, &|done, _| uploaded(done))
        .await
        .with_context(|| format!("publishing the bundle to {to}"))
}

/// [`push`] in a build without AWS: an error that says so.
#[cfg(not(feature = "aws"))]
pub async fn push(
    _: &ModelArgs,
    _: &str,
    _: &dyn Fn(usize),
    _: &(dyn Fn(usize) + Sync),
) -> anyhow::Result<BundleManifest> {
    Err(crate::needs_aws_build("publishing a model bundle to S3"))
}

/// When `--model-source` is an S3 prefix that holds a bundle: settings that read everything
/// from `<cache dir>/bundle` (no pulls), and the bundle to sync there ([`BundleSync`]).
/// Otherwise the settings as given and nothing to sync.
pub async fn resolve(args: &ModelArgs) -> anyhow::Result<(ModelArgs, Option<BundleSync>)> {
    let Some(source) = args.model_source.as_deref() else {
        return Ok((args.clone(), None));
    };
    if !matches!(StoreLocation::parse(source)?, StoreLocation::S3 { .. }) {
        return Ok((args.clone(), None));
    }
    open_bundle(args, source).await
}

#[cfg(not(feature = "aws"))]
async fn open_bundle(_: &ModelArgs, _: &str) -> anyhow::Result<(ModelArgs, Option<BundleSync>)> {
    Err(crate::needs_aws_build("an s3:// model source"))
}

/// No bundle is synced without the `aws` feature ([`resolve`] refuses S3 sources).
#[cfg(not(feature = "aws"))]
pub enum BundleSync {}

#[cfg(not(feature = "aws"))]
impl BundleSync {
    /// Syncs the encoder's files.
    pub async fn encoder(&self) -> anyhow::Result<SyncReport> {
        match *self {}
    }

    /// Syncs every other file.
    pub async fn rest(&self) -> anyhow::Result<SyncReport> {
        match *self {}
    }

    /// The encoder's folder once [`BundleSync::encoder`] has synced it.
    pub fn encoder_dir(&self) -> Option<PathBuf> {
        match *self {}
    }
}

/// What this process reads of an S3 bundle, to sync into the cache folder in two parts that
/// can run at the same time: the encoder's files, and the rest (heads, data sets, embedding
/// caches), so the data sets can be read while the encoder is still downloading.
#[cfg(feature = "aws")]
pub struct BundleSync {
    source: String,
    store: S3Store,
    root: PathBuf,
    /// `<root>/models/<encoder id>`.
    encoder_root: PathBuf,
    encoder: BundleManifest,
    rest: BundleManifest,
}

#[cfg(feature = "aws")]
impl BundleSync {
    /// Syncs the encoder's files.
    pub async fn encoder(&self) -> anyhow::Result<SyncReport> {
        self.sync(&self.encoder).await
    }

    /// Syncs every other file.
    pub async fn rest(&self) -> anyhow::Result<SyncReport> {
        self.sync(&self.rest).await
    }

    /// The encoder's folder once [`BundleSync::encoder`] has synced it (every file checked
    /// against its sha256); `None` when the bundle holds no encoder for this process.
    pub fn encoder_dir(&self) -> Option<PathBuf> {
        (!self.encoder.files.is_empty()).then(|| self.encoder_root.clone())
    }

    async fn sync(&self, part: &BundleManifest) -> anyhow::Result<SyncReport> {
        let report = bundle::sync(&self.store, part, &self.root)
            .await
            .with_context(|| format!("syncing the model bundle {}", self.source))?;
        tracing::info!(
            source = self.source,
            files = report.files,
            downloaded_files = report.downloaded_files,
            downloaded_bytes = report.downloaded_bytes,
            reused_files = report.reused_files,
            elapsed_ms = report.elapsed_ms,
            "model bundle part synced"
        );
        Ok(report)
    }
}

/// [`resolve`] of an S3 source: reads its manifest and keeps what this process needs.
#[cfg(feature = "aws")]
async fn open_bundle(
    args: &ModelArgs,
    source: &str,
) -> anyhow::Result<(ModelArgs, Option<BundleSync>)> {
    let store = s3_store(source, &args.cache_dir()).await?;
    let Some(manifest) = bundle::read_manifest(&store).await? else {
        return Ok((args.clone(), None));
    };
    // Only what this process's agents read: a numeric function downloads no encoder.
    let encoder = args.needs_encoder();
    let (encoder_files, rest): (Vec<_>, Vec<_>) = manifest
        .files
        .into_iter()
        .filter(|f| needed_by(&args.only_agents, encoder, &args.model, &f.path))
        .partition(|f| f.path.starts_with(&format!("{MODELS}/{}/", args.model)));
    let part = |files| BundleManifest {
        format: manifest.format,
        files,
    };
    let root = args.cache_dir().join("bundle");
    let mut local = args.clone();
    local.model_source = None;
    local.auto_pull = false;
    local.models_dir = root.join(MODELS);
    local.data_dir = root.join(DATA);
    local.cache_dir = Some(root.join("cache"));
    let sync = BundleSync {
        source: source.to_string(),
        store,
        encoder_root: local.models_dir.join(&args.model),
        root,
        encoder: part(encoder_files),
        rest: part(rest),
    };
    Ok((local, Some(sync)))
}

/// Whether bundle file `path` is read by a process serving `selection` (`encoder`: whether it
/// loads the encoder `encoder_id`). Files of no known reader are kept.
pub fn needed_by(selection: &AgentSelection, encoder: bool, encoder_id: &str, path: &str) -> bool {
    use AgentKind::*;
    let any = |kinds: &[AgentKind]| kinds.iter().any(|k| selection.contains(*k));
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(MODELS), Some(dir), _) if dir == encoder_id => encoder,
        (Some(MODELS), Some(SENTIMENT_HEAD), _) => any(&[MarketIntelligence]),
        (Some(MODELS), Some(EMAIL_HEAD | THREAT_HEAD), _) => any(&[ThreatIntelligence]),
        (Some(MODELS), Some(CLIENT_HEALTH_DIR), _) => any(&[ClientHealth]),
        // The knowledge base: ATT&CK, CWE and SP 800-53's guidance.
        (Some(DATA), Some("attack-enterprise" | "cwe"), _) => any(&[ThreatIntelligence, NlpQuery]),
        // SP 800-53 is also the knowledge base's guidance; the other catalogues are compliance's.
        (Some(DATA), Some(PUBLISHED_DATASET), _) => {
            match path.ends_with(&format!("/{GUIDANCE_FILE}")) {
                true => any(&[ThreatIntelligence, NlpQuery, Compliance]),
                false => any(&[Compliance]),
            }
        }
        (Some(DATA), Some("modeldata"), _) => any(&[FederatedLearning]),
        (Some("cache"), Some("embeddings"), Some(_)) => {
            let name = path.rsplit('/').next().unwrap_or_default();
            if name.starts_with(KNOWLEDGE_INDEX) {
                any(&[ThreatIntelligence, NlpQuery])
            } else if name.starts_with(CONTROLS_INDEX_PREFIX) {
                any(&[Compliance])
            } else if name.starts_with(PARTNERS_INDEX) {
                any(&[PartnerMatching])
            } else {
                true
            }
        }
        _ => true,
    }
}

#[cfg(feature = "aws")]
async fn s3_store(location: &str, cache_dir: &Path) -> anyhow::Result<S3Store> {
    match StoreLocation::parse(location)? {
        StoreLocation::S3 { bucket, prefix } => {
            Ok(S3Store::from_env(bucket, prefix, cache_dir.to_path_buf()).await)
        }
        _ => anyhow::bail!("`{location}` is not an S3 location (s3://bucket/prefix)"),
    }
}

/// `local` as bundle file `path`, when `msp-mesh prepare` has put it there.
fn prepared_file(local: PathBuf, path: String) -> anyhow::Result<LocalFile> {
    anyhow::ensure!(
        local.is_file(),
        "{} is missing; run `msp-mesh prepare` first",
        local.display()
    );
    Ok(LocalFile { local, path })
}

/// Every file under `root` whose name passes `wanted`, as bundle path `prefix/<relative>`.
fn walk(
    root: &Path,
    prefix: &str,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<LocalFile>,
) -> anyhow::Result<()> {
    for path in read_dir_sorted(root)? {
        let name = file_name(&path);
        if name.starts_with('.') {
            continue; // partial downloads, editor files
        }
        if path.is_dir() {
            walk(&path, &format!("{prefix}/{name}"), wanted, out)?;
        } else if wanted(&name) {
            out.push(LocalFile {
                path: format!("{prefix}/{name}"),
                local: path,
            });
        }
    }
    Ok(())
}

/// The most recently written cache file of each index the agents search
/// (`<index>-<key>.safetensors`): older ones hold embeddings of texts that have since changed,
/// and the training features of the heads are not needed to serve.
fn newest_per_index(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut newest: BTreeMap<String, (std::time::SystemTime, PathBuf)> = BTreeMap::new();
    for path in read_dir_sorted(dir)? {
        let name = file_name(&path);
        let Some(index) = name
            .strip_suffix(".safetensors")
            .and_then(|stem| stem.rsplit_once('-'))
            .map(|(index, _)| index.to_string())
            .filter(|index| {
                index == KNOWLEDGE_INDEX
                    || index == PARTNERS_INDEX
                    || index.starts_with(CONTROLS_INDEX_PREFIX)
            })
        else {
            continue;
        };
        let modified = std::fs::metadata(&path)?.modified()?;
        if newest.get(&index).is_none_or(|(t, _)| modified > *t) {
            newest.insert(index, (modified, path));
        }
    }
    Ok(newest.into_values().map(|(_, p)| p).collect())
}

fn read_dir_sorted(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    Ok(paths)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand, for a bundle's kinds of file: a numeric function takes no encoder, each
    /// language function its own heads, data and caches.
    #[test]
    fn each_function_syncs_only_what_its_agents_read() {
        let files = [
            "models/all-minilm-l6-v2/model.safetensors",
            "models/threat-category-minilm/head.json",
            "models/sentiment-minilm/lexical.json",
            "models/client-health/mlc-churn/v1.json",
            "data/attack-enterprise/techniques.json",
            "data/modeldata/Rdata.rdb",
            "data/evidentia-catalogues/nist-csf-2.0.json",
            "cache/embeddings/all-minilm-l6-v2_1/knowledge-01.safetensors",
            "cache/embeddings/all-minilm-l6-v2_1/controls-cis-v8-02.safetensors",
            "cache/embeddings/all-minilm-l6-v2_1/partners-03.safetensors",
            "data/evidentia-catalogues/us-federal/nist-800-53-rev5.json",
        ];
        let taken = |agents: &str| -> Vec<usize> {
            let selection: AgentSelection = agents.parse().unwrap();
            #[derive(clap::Parser)]
            struct Cli {
                #[command(flatten)]
                model: ModelArgs,
            }
            let mut args = <Cli as clap::Parser>::parse_from(["x", "--only-agents", agents]).model;
            args.model = "all-minilm-l6-v2".into();
            let encoder = args.needs_encoder();
            (0..files.len())
                .filter(|&i| needed_by(&selection, encoder, &args.model, files[i]))
                .collect()
        };
        assert_eq!(taken("anomaly-detection"), Vec::<usize>::new());
        assert_eq!(taken("client-health"), vec![3]);
        assert_eq!(taken("federated-learning"), vec![5]);
        assert_eq!(taken("threat-intelligence"), vec![0, 1, 4, 7, 10]);
        assert_eq!(taken("nlp-query"), vec![0, 4, 7, 10]);
        assert_eq!(taken("market-intelligence"), vec![0, 2]);
        assert_eq!(taken("compliance"), vec![0, 6, 8, 10]);
        assert_eq!(taken("partner-matching"), vec![0, 9]);
        assert_eq!(taken("none"), vec![0], "the API function's /embed");
        assert_eq!(taken("all"), (0..files.len()).collect::<Vec<_>>());
    }

    #[test]
    fn only_the_newest_cache_file_of_each_served_index_is_bundled() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, age_s: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, b"x").unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_s);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        write("knowledge-aaaaaaaaaaaaaaaa.safetensors", 100);
        write("knowledge-bbbbbbbbbbbbbbbb.safetensors", 10);
        write("controls-soc2-cccccccccccccccc.safetensors", 50);
        write("spam-train-dddddddddddddddd.safetensors", 1);
        write("notes.txt", 1);
        let names: Vec<String> = newest_per_index(dir.path())
            .unwrap()
            .iter()
            .map(|p| file_name(p))
            .collect();
        assert_eq!(
            names,
            [
                "controls-soc2-cccccccccccccccc.safetensors",
                "knowledge-bbbbbbbbbbbbbbbb.safetensors"
            ]
        );
    }
}
