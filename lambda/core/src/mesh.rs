//! The [`Mesh`]: the one object every entry point uses (`msp-mesh serve`, `bootstrap` in every
//! mode, `msp-mesh score` and its Lambda shards, `msp-mesh worker`). It holds the encoder
//! backend and the loaded agents, the state store, the event stream and sinks, the threat
//! notifier and the job queue, and is built in two steps: [`Services::open`] (state and AWS
//! resources, from settings) and [`Mesh::load`] (models). It loads only what is on disk or in
//! the S3 bundle: fetching and training are the entry points' explicit preparation step.

use std::sync::Arc;
use std::time::Instant;

use mesh_agents::loader::{LanguageAgents, LanguageSources, Loaded, NumericAgents};
use mesh_agents::recipes::Progress;
use mesh_agents::user_state::UserState;
use mesh_agents::{Agent, AgentKind, AgentSelection};
use mesh_inference::backend::{BatchLimits, EmbeddingBackend};
use mesh_inference::bundle::SyncReport;
use mesh_inference::embedder::SentenceEmbedder;
use mesh_inference::store::{open_store, StoreLocation};
use mesh_models::Manifest;
use serde_json::Value;

use crate::agents::AgentAnswer;
#[cfg(feature = "aws")]
use crate::config::StateBackend;
use crate::config::{ModelArgs, ServiceArgs};
use crate::connections::ConnectionsApi;
#[cfg(feature = "aws")]
use crate::connections::WebSocketBroadcaster;
use crate::error::MeshError;
use crate::events::{EventSink, EventStream, LocalEventStream};
use crate::jobs::JobQueue;
use crate::metrics::Metrics;
use crate::notify::ThreatNotifier;
#[cfg(feature = "aws")]
use crate::sinks::KinesisSink;
#[cfg(feature = "aws")]
use crate::store::DynamoStore;
use crate::store::{
    now_ms, off_thread, AgentStateRecord, EventLog, SqliteStore, StateStore, StoreError,
};

/// The service core: models, agents, state, events.
pub struct Mesh {
    /// The sentence encoder, when this process needs one ([`ModelArgs::needs_encoder`]): a function that
    /// serves only numeric agents neither downloads nor loads it.
    pub embedder: Option<EmbeddingBackend>,
    /// Most inputs one embedding request may carry.
    pub max_client_batch: usize,
    pub started: Instant,
    /// The language agents (each loaded, or the reason it is not).
    pub agents: LanguageAgents,
    /// The numeric agents (each loaded, or the reason it is not).
    pub numeric: NumericAgents,
    /// Results, threats, agent state, network intelligence, connections.
    pub store: Arc<dyn StateStore>,
    /// What users give the agents, and the claims of running idempotent requests.
    pub user_state: Arc<dyn UserState>,
    /// Every result as an event, alerts, live subscribers.
    pub events: Arc<dyn EventStream>,
    pub metrics: Arc<Metrics>,
    /// Sends HIGH and CRITICAL threats to EventBridge, when a bus is configured.
    pub threat_notifier: Option<ThreatNotifier>,
    /// The S3 model bundle this process synced at start, if it runs from one.
    pub model_bundle: Option<SyncReport>,
    /// Where published events go besides the log and the live subscribers (Kinesis, the
    /// WebSocket API's connections).
    pub event_sinks: Vec<Arc<dyn EventSink>>,
    /// The SQS queue of async jobs, when configured.
    pub job_queue: Option<JobQueue>,
    /// The WebSocket API's management endpoint, when configured.
    pub connections_api: Option<Arc<ConnectionsApi>>,
    /// The agents this process serves (a Lambda function serves its own; the server all).
    pub served: AgentSelection,
    /// Milliseconds from the start of loading to a ready mesh, when it was loaded.
    pub load_ms: Option<u64>,
    /// Who this process is in the stored agent states: the Lambda function's name, else
    /// `<host>:<pid>`.
    pub instance: String,
    /// When this process last stored its agents' states (its heartbeat), ms since the epoch.
    last_heartbeat_ms: std::sync::atomic::AtomicI64,
}

/// How often a process that answers requests refreshes its stored agent states.
pub const HEARTBEAT_MS: i64 = 60_000;

/// This process's name in the stored agent states.
fn instance_name() -> String {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

/// The state store, event stream and AWS resources of a mesh, opened from its settings.
pub struct Services {
    pub store: Arc<dyn StateStore>,
    /// What users give the agents (partners, trained models, federated runs), in the same
    /// backend as `store`.
    pub user_state: Arc<dyn UserState>,
    pub events: Arc<dyn EventStream>,
    pub threat_notifier: Option<ThreatNotifier>,
    pub event_sinks: Vec<Arc<dyn EventSink>>,
    pub job_queue: Option<JobQueue>,
    pub connections_api: Option<Arc<ConnectionsApi>>,
}

/// The AWS configuration of the environment, when a setting of `args` needs one.
#[cfg(feature = "aws")]
async fn aws_config(args: &ServiceArgs) -> anyhow::Result<Option<AwsConfig>> {
    Ok(match args.needs_aws() {
        true => {
            Some(mesh_inference::aws::sdk_config(mesh_inference::aws::SdkRetries::Standard).await)
        }
        false => None,
    })
}

/// In a build without AWS: none, or the error of the setting that needs it.
#[cfg(not(feature = "aws"))]
async fn aws_config(args: &ServiceArgs) -> anyhow::Result<Option<AwsConfig>> {
    match args.needs_aws() {
        true => Err(crate::needs_aws_build(
            "--state-backend aws (and --event-bus, --kinesis-stream, --websocket-endpoint, --async-queue-url)",
        )),
        false => Ok(None),
    }
}

#[cfg(feature = "aws")]
type AwsConfig = aws_config::SdkConfig;
#[cfg(not(feature = "aws"))]
type AwsConfig = crate::NoSdk;

/// The state store, the event log and the user state of `args`: one SQLite file (or
/// `:memory:`), or the DynamoDB tables when the backend is `aws` and `config` is given.
#[allow(clippy::type_complexity)]
fn open_state(
    args: &ServiceArgs,
    config: Option<&AwsConfig>,
) -> anyhow::Result<(Arc<dyn StateStore>, Arc<dyn EventLog>, Arc<dyn UserState>)> {
    Ok(match (&args.state_backend, config) {
        #[cfg(not(feature = "aws"))]
        (_, Some(config)) => match *config {},
        #[cfg(feature = "aws")]
        (StateBackend::Aws, Some(config)) => {
            let mut dynamo = DynamoStore::new(config, args.tables.clone())?;
            if let Some(location) = &args.results_location {
                dynamo = dynamo.with_large_results(config, location)?;
            }
            let dynamo = Arc::new(dynamo);
            (dynamo.clone(), dynamo.clone(), dynamo)
        }
        _ => {
            let path = args.state_db();
            let sqlite = Arc::new(if path.as_os_str() == ":memory:" {
                SqliteStore::in_memory()?
            } else {
                SqliteStore::open(&path)?
            });
            (sqlite.clone(), sqlite.clone(), sqlite)
        }
    })
}

/// Only the user state of `args` (for CLI commands that change it without a server, and
/// without touching anything else a running server holds).
pub async fn open_user_state(args: &ServiceArgs) -> anyhow::Result<Arc<dyn UserState>> {
    let config = aws_config(args).await?;
    Ok(open_state(args, config.as_ref())?.2)
}

impl Services {
    /// Opens the state store and event log (the embedded file, `:memory:` for none that
    /// persists, or the DynamoDB tables), the event sinks, the job queue and the notifier.
    pub async fn open(args: &ServiceArgs) -> anyhow::Result<Self> {
        let config = aws_config(args).await?;
        let (store, log, user_state) = open_state(args, config.as_ref())?;
        #[allow(unused_mut)]
        let mut event_sinks: Vec<Arc<dyn EventSink>> = vec![];
        #[allow(unused_mut)]
        let (mut threat_notifier, mut job_queue, mut connections_api) = (None, None, None);
        #[cfg(not(feature = "aws"))]
        if let Some(config) = config {
            match config {}
        }
        #[cfg(feature = "aws")]
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
        Ok(Self {
            events: Arc::new(LocalEventStream::new(log)),
            store,
            user_state,
            threat_notifier,
            event_sinks,
            job_queue,
            connections_api,
        })
    }
}

impl Mesh {
    /// Wraps a running backend, with agents as given.
    pub fn new(
        embedder: EmbeddingBackend,
        max_client_batch: usize,
        agents: LanguageAgents,
        numeric: NumericAgents,
        services: Services,
    ) -> Arc<Self> {
        Self::build(
            Some(embedder),
            max_client_batch,
            (agents, numeric, AgentSelection::all()),
            services,
            None,
            None,
        )
    }

    fn build(
        embedder: Option<EmbeddingBackend>,
        max_client_batch: usize,
        (agents, numeric, served): (LanguageAgents, NumericAgents, AgentSelection),
        services: Services,
        model_bundle: Option<SyncReport>,
        load_ms: Option<u64>,
    ) -> Arc<Self> {
        let mesh = Arc::new(Self {
            embedder,
            max_client_batch,
            started: Instant::now(),
            agents,
            numeric,
            store: services.store,
            user_state: services.user_state,
            events: services.events,
            metrics: Arc::new(Metrics::default()),
            threat_notifier: services.threat_notifier,
            model_bundle,
            event_sinks: services.event_sinks,
            job_queue: services.job_queue,
            connections_api: services.connections_api,
            served,
            load_ms,
            instance: instance_name(),
            last_heartbeat_ms: std::sync::atomic::AtomicI64::new(now_ms()),
        });
        mesh.record_agent_states("started");
        mesh
    }

    /// Opens the services of `service`, resolves the model source (syncing an S3 bundle into
    /// the cache), loads the encoder and (unless `--agents false`) the selected agents.
    pub async fn load(
        args: &ModelArgs,
        service: &ServiceArgs,
        progress: &dyn Progress,
    ) -> anyhow::Result<Arc<Self>> {
        let started = Instant::now();
        // Settings errors (store, AWS resources) before the slow model loading.
        let services = Services::open(service).await?;
        let (resolved, bundle) = crate::bundle::resolve(args).await?;
        let args = &resolved;
        let paths = args.agent_paths();
        // Two lines at once: the encoder's files synced then loaded, and the other files synced
        // then the data sets read, so ATT&CK and the catalogues parse while the encoder downloads.
        let encoder = async {
            let started = Instant::now();
            let synced = match &bundle {
                Some(bundle) => Some(bundle.encoder().await?),
                None => None,
            };
            let backend = match (
                args.needs_encoder(),
                bundle.as_ref().and_then(|b| b.encoder_dir()),
            ) {
                (false, _) => None,
                // The sync has just checked every file against its sha256.
                (true, Some(dir)) => {
                    let entry = Manifest::builtin().get(&args.model)?.clone();
                    Some(start_backend(args, entry, dir, "model bundle", started).await?)
                }
                (true, None) => Some(load_backend(args).await?),
            };
            anyhow::Ok((backend, synced))
        };
        let sources = async {
            let synced = match &bundle {
                Some(bundle) => Some(bundle.rest().await?),
                None => None,
            };
            let sources = match args.agents && args.needs_encoder() {
                true => {
                    let (paths, selection) = (paths.clone(), args.only_agents.clone());
                    let read = move || LanguageSources::read(&paths, &selection);
                    Some(tokio::task::spawn_blocking(read).await?)
                }
                false => None,
            };
            anyhow::Ok((sources, synced))
        };
        let ((backend, encoder_synced), (sources, rest_synced)) =
            tokio::try_join!(encoder, sources)?;
        let model_bundle = match (encoder_synced, rest_synced) {
            (Some(a), Some(b)) => Some(a.merge(b)),
            (a, b) => a.or(b),
        };
        let (agents, numeric) = if args.agents {
            let cloud = args.cloud.providers().await?;
            let state = &services.user_state;
            let agents = match (&backend, sources) {
                (Some(backend), Some(sources)) => {
                    LanguageAgents::load_from(
                        sources,
                        backend,
                        &paths,
                        &cloud,
                        &args.only_agents,
                        state,
                        progress,
                    )
                    .await
                }
                _ => LanguageAgents::none(&args.only_agents.excluded_reason()),
            };
            let numeric = NumericAgents::load(&paths, &args.only_agents, state);
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
        let served = match args.agents {
            true => args.only_agents.clone(),
            false => AgentSelection::none(),
        };
        Ok(Self::build(
            backend,
            args.max_client_batch,
            (agents, numeric, served),
            services,
            model_bundle,
            Some(started.elapsed().as_millis() as u64),
        ))
    }

    /// Parses a JSON request body as agent `kind`'s request and runs it.
    pub async fn dispatch(&self, kind: AgentKind, body: Value) -> Result<AgentAnswer, MeshError> {
        crate::with_agent!(self, kind, agent => crate::agents::run_body(agent, body).await)
    }

    /// Runs one typed request through a loaded agent.
    pub async fn run<A: Agent>(
        &self,
        agent: &Loaded<A>,
        request: A::Request,
    ) -> Result<AgentAnswer, MeshError> {
        crate::agents::run(agent, request).await
    }

    /// Scores one batch record (a JSON object, or why the input is not one) with agent `kind`,
    /// without storing it; never fails: an error becomes the record's answer, with the record's
    /// `id` passed through when it has one. The flag says whether it was answered.
    pub async fn score_record(
        &self,
        kind: AgentKind,
        record: Result<Value, String>,
    ) -> (Value, bool) {
        use serde_json::json;
        let mut body = match record {
            Ok(body) => body,
            Err(message) => {
                return (
                    json!({"id": null, "error": {"error_type": "bad_json", "error": message}}),
                    false,
                )
            }
        };
        let id = body
            .as_object_mut()
            .and_then(|o| o.remove("id"))
            .unwrap_or(Value::Null);
        match self.dispatch(kind, body).await.map(|a| a.body) {
            Ok(Value::Object(mut o)) => {
                o.insert("id".into(), id);
                (Value::Object(o), true)
            }
            Ok(other) => (json!({"id": id, "response": other}), true),
            Err(e) => (json!({"id": id, "error": e.body()}), false),
        }
    }

    /// Each agent's model (`id@version`), or the reason it is not loaded.
    pub fn agent_models(&self) -> Vec<(AgentKind, Result<String, String>)> {
        fn model<A: Agent>(l: &Loaded<A>) -> Result<String, String> {
            l.as_ref().map(|a| a.model_used()).map_err(Clone::clone)
        }
        AgentKind::ALL
            .into_iter()
            .map(|kind| (kind, crate::with_agent!(self, kind, agent => model(agent))))
            .collect()
    }

    /// Stores the state of every agent this process serves (loaded or why not, model, load
    /// time, its measured requests so far) with the event that changed it; agents it does not
    /// serve are left to the processes that do.
    pub fn record_agent_states(&self, change: &str) {
        store_agent_states(self.store.as_ref(), &self.agent_state_records(change));
    }

    /// The records [`Self::record_agent_states`] stores; restarts the heartbeat clock.
    fn agent_state_records(&self, change: &str) -> Vec<AgentStateRecord> {
        let at = now_ms();
        self.last_heartbeat_ms
            .store(at, std::sync::atomic::Ordering::Relaxed);
        self.agent_models()
            .into_iter()
            .filter(|(kind, _)| self.served.contains(*kind))
            .map(|(kind, model)| {
                let figures = self.metrics.snapshot(kind);
                let mut state = serde_json::json!({
                    "change": change,
                    "served_by": self.instance,
                    "load_ms": self.load_ms,
                    "requests": figures.requests,
                    "client_errors": figures.client_errors,
                    "server_errors": figures.server_errors,
                    "p50_latency_ms": figures.p50_seconds.map(|v| v * 1e3),
                    "p95_latency_ms": figures.p95_seconds.map(|v| v * 1e3),
                });
                match model {
                    Ok(m) => {
                        state["model_loaded"] = true.into();
                        state["model_used"] = m.into();
                    }
                    Err(r) => {
                        state["model_loaded"] = false.into();
                        state["reason"] = r.into();
                    }
                }
                AgentStateRecord {
                    agent: kind.cli_name().to_string(),
                    timestamp_ms: at,
                    timestamp: crate::store::iso8601_ms(at),
                    state,
                }
            })
            .collect()
    }

    /// Stores the served agents' states again once the last heartbeat is [`HEARTBEAT_MS`] old
    /// (called after answers; the store calls run off the request's path).
    pub fn heartbeat(&self) {
        let last = self
            .last_heartbeat_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now_ms() - last < HEARTBEAT_MS {
            return;
        }
        let records = self.agent_state_records("heartbeat");
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || store_agent_states(store.as_ref(), &records));
    }

    /// Runs a blocking store call off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&dyn StateStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MeshError> {
        Ok(off_thread(&self.store, move |store| call(store)).await?)
    }
}

/// Stores agent-state records, logging (not failing on) a store error.
fn store_agent_states(store: &dyn StateStore, records: &[AgentStateRecord]) {
    for record in records {
        if let Err(e) = store.put_agent_state(record) {
            tracing::warn!(error = %e, agent = record.agent, "recording agent state failed");
        }
    }
}

/// Finds the encoder's files through the configured store, loads it and starts its worker
/// thread. A local model must be on disk already (the entry points' preparation fetches it).
pub async fn load_backend(args: &ModelArgs) -> anyhow::Result<EmbeddingBackend> {
    let manifest = Manifest::builtin();
    let entry = manifest.get(&args.model)?.clone();
    let location = match &args.model_source {
        Some(s) => StoreLocation::parse(s)?,
        None => StoreLocation::Local(args.models_dir.clone()),
    };
    let started = Instant::now();
    let store = open_store(&location, &args.cache_dir()).await?;
    let dir = store.fetch(&entry).await?;
    start_backend(args, entry, dir, &store.describe(), started).await
}

/// The backend on the encoder `entry` whose files are in `dir`, already verified (fetched from
/// a store, or synced with a model bundle; `source` says which, `started` when that began).
async fn start_backend(
    args: &ModelArgs,
    entry: mesh_models::ModelEntry,
    dir: std::path::PathBuf,
    source: &str,
    started: Instant,
) -> anyhow::Result<EmbeddingBackend> {
    let fetched = started.elapsed();
    let format = args.encoder_weights;
    let embedder = tokio::task::spawn_blocking(move || {
        SentenceEmbedder::load(&dir, &entry, &mesh_inference::Device::Cpu, format)
    })
    .await??;
    tracing::info!(
        model = embedder.model_id(),
        store = source,
        fetch_ms = fetched.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    let limits = BatchLimits {
        max_batch_tokens: args.max_batch_tokens,
        max_batch_requests: args.max_batch_requests,
        ..BatchLimits::default()
    };
    let (backend, _thread) = EmbeddingBackend::spawn(embedder, limits);
    Ok(backend)
}
