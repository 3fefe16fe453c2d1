//! Builds the language agents (and the numeric ones, [`NumericAgents`]) from the fetched data, the trained heads and one encoder.
//! An agent whose inputs are missing is reported as not loaded, with the reason, instead
//! of stopping the others.

use std::path::PathBuf;
use std::sync::Arc;

use mesh_inference::backend::EmbeddingBackend;

use crate::anomaly::AnomalyAgent;
use crate::client_health::{ClientHealthAgent, ModelStore};
use crate::compliance::{Catalogue, ComplianceAgent};
use crate::datasets;
use crate::federated::FederatedAgent;
use crate::head::ClassificationHead;
use crate::knowledge::{self, attack::Attack, cwe, KnowledgeIndex, Passage};
use crate::market::MarketAgent;
use crate::nlp_query::{AnswerWriter, ChatAnswerer, NlpQueryAgent, T5Answerer};
use crate::partners::{seed_directory, PartnerAgent};
use crate::recipes::Progress;
use crate::resource::ResourceAgent;
use crate::revenue::RevenueAgent;
use crate::threat::ThreatAgent;
use crate::user_state::UserState;
use crate::{AgentError, AgentKind, AgentSelection};

/// Where the agents' inputs live.
#[derive(Debug, Clone)]
pub struct AgentPaths {
    /// Pulled and trained models (heads in `<models_dir>/<head id>`).
    pub models_dir: PathBuf,
    /// Pulled data sets.
    pub data_dir: PathBuf,
    /// Embedding cache.
    pub cache_dir: PathBuf,
    /// Partner file that seeds the directory until it is first changed (the shipped sample
    /// set when absent); changes go to the user state, never to this file.
    pub partners_file: Option<PathBuf>,
    /// Optional T5 checkpoint (config.json, model.safetensors, tokenizer.json) for generated answers.
    pub t5_dir: Option<PathBuf>,
    /// Optional GGUF chat model (SmolLM2) that writes `/nlp-query/ask` answers with citations.
    pub chat_model: Option<PathBuf>,
}

/// An agent, or why it is not loaded.
pub type Loaded<A> = Result<Arc<A>, String>;

/// The five language agents.
pub struct LanguageAgents {
    pub threat: Loaded<ThreatAgent>,
    pub market: Loaded<MarketAgent>,
    pub nlp_query: Loaded<NlpQueryAgent>,
    pub partners: Loaded<PartnerAgent>,
    pub compliance: Loaded<ComplianceAgent>,
}

/// Manifest ids of the heads the agents use.
pub const SENTIMENT_HEAD: &str = "sentiment-minilm";
pub const EMAIL_HEAD: &str = "spam-email-minilm";
pub const THREAT_HEAD: &str = "threat-category-minilm";
/// `id@version` of the local chat model (`--chat-model`).
pub const CHAT_MODEL: &str = "smollm2-135m-instruct@1";

/// Embedding-cache names of the indexes the agents search at serve time: the knowledge base,
/// and one per control catalogue (`controls-<framework>`).
pub const KNOWLEDGE_INDEX: &str = "knowledge";
pub const CONTROLS_INDEX_PREFIX: &str = "controls-";

/// What the language agents read from the data sets before they need the encoder: ATT&CK
/// and the knowledge passages (threat intelligence, NLP query), the control catalogues
/// (compliance). Each is why it is not read when no selected agent needs it or it fails.
pub struct LanguageSources {
    knowledge: Result<(Attack, Vec<Passage>), String>,
    catalogues: Result<Vec<Catalogue>, String>,
}

impl LanguageSources {
    /// Reads (blocking) what the selected agents need.
    pub fn read(paths: &AgentPaths, selection: &AgentSelection) -> Self {
        let excluded = selection.excluded_reason();
        let wanted = |kind| selection.contains(kind);
        let knowledge = if wanted(AgentKind::ThreatIntelligence) || wanted(AgentKind::NlpQuery) {
            read_knowledge(paths)
        } else {
            Err(excluded.clone())
        };
        let catalogues = if wanted(AgentKind::Compliance) {
            Catalogue::all(&paths.data_dir.join(crate::catalogues::PUBLISHED_DATASET))
                .map_err(|e| e.to_string())
        } else {
            Err(excluded)
        };
        Self {
            knowledge,
            catalogues,
        }
    }
}

impl LanguageAgents {
    /// No agent loaded, for the same reason.
    pub fn none(reason: &str) -> Self {
        Self {
            threat: Err(reason.into()),
            market: Err(reason.into()),
            nlp_query: Err(reason.into()),
            partners: Err(reason.into()),
            compliance: Err(reason.into()),
        }
    }

    /// Loads every selected agent it can; embeds the knowledge base and control catalogues
    /// (cached) when a selected agent needs them. What users give the agents (the partner
    /// directory) lives in `state`. Reads the data sets first ([`LanguageSources::read`]); use
    /// [`LanguageAgents::load_from`] to read them while the encoder loads.
    pub async fn load(
        encoder: &EmbeddingBackend,
        paths: &AgentPaths,
        cloud: &crate::cloud::CloudProviders,
        selection: &AgentSelection,
        state: &Arc<dyn UserState>,
        progress: &dyn Progress,
    ) -> Self {
        let sources = LanguageSources::read(paths, selection);
        Self::load_from(sources, encoder, paths, cloud, selection, state, progress).await
    }

    /// [`LanguageAgents::load`] from data sets already read.
    pub async fn load_from(
        sources: LanguageSources,
        encoder: &EmbeddingBackend,
        paths: &AgentPaths,
        cloud: &crate::cloud::CloudProviders,
        selection: &AgentSelection,
        state: &Arc<dyn UserState>,
        progress: &dyn Progress,
    ) -> Self {
        let excluded = selection.excluded_reason();
        let wanted = |kind| selection.contains(kind);
        let head = |id: &str| ClassificationHead::load_dir(&paths.models_dir.join(id));
        let knowledge = match sources.knowledge {
            Ok((attack, passages)) => {
                index_knowledge(encoder, paths, attack, passages, progress).await
            }
            Err(e) => Err(e),
        };
        let threat = match (&knowledge, head(THREAT_HEAD), head(EMAIL_HEAD)) {
            (Ok((attack, index)), Ok(t), Ok(e)) => {
                ThreatAgent::new(encoder.clone(), t, e, attack.clone(), index.clone())
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            }
            (Err(e), _, _) => Err(e.clone()),
            (_, Err(e), _) | (_, _, Err(e)) => Err(e.to_string()),
        };
        let market = head(SENTIMENT_HEAD)
            .and_then(|h| MarketAgent::new(encoder.clone(), h))
            .map(|a| a.with_cloud(cloud.market.clone()))
            .map(Arc::new)
            .map_err(|e| e.to_string());
        let generator = match (&paths.chat_model, &paths.t5_dir) {
            (Some(path), _) => match ChatAnswerer::load(path, CHAT_MODEL) {
                Ok(c) => Some(Arc::new(AnswerWriter::Chat(Box::new(c)))),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "chat model not loaded; answers stay extractive");
                    None
                }
            },
            (None, Some(dir)) => match T5Answerer::load_dir(dir) {
                Ok(g) => Some(Arc::new(AnswerWriter::T5(Box::new(g)))),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "T5 checkpoint not loaded; answers stay extractive");
                    None
                }
            },
            (None, None) => None,
        };
        let nlp_query = knowledge
            .as_ref()
            .map(|(_, index)| {
                Arc::new(
                    NlpQueryAgent::new(encoder.clone(), index.clone(), generator)
                        .with_cloud(cloud.nlp_query.clone()),
                )
            })
            .map_err(Clone::clone);
        let partners = if wanted(AgentKind::PartnerMatching) {
            match seed_directory(paths.partners_file.as_deref()) {
                Ok(seed) => PartnerAgent::load(
                    encoder.clone(),
                    seed,
                    state.clone(),
                    paths.cache_dir.clone(),
                )
                .await
                .map(Arc::new)
                .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        } else {
            Err(excluded.clone())
        };
        let compliance = match sources.catalogues {
            Ok(catalogues) => load_compliance(
                encoder,
                paths,
                catalogues,
                cloud.compliance.clone(),
                progress,
            )
            .await
            .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        Self {
            threat: keep(selection, AgentKind::ThreatIntelligence, &excluded, threat),
            market: keep(selection, AgentKind::MarketIntelligence, &excluded, market),
            nlp_query: keep(selection, AgentKind::NlpQuery, &excluded, nlp_query),
            partners,
            compliance,
        }
    }

    /// `(agent, why it is not loaded)` for every agent that failed to load.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        [
            ("threat-intelligence", self.threat.as_ref().err()),
            ("market-intelligence", self.market.as_ref().err()),
            ("nlp-query", self.nlp_query.as_ref().err()),
            ("partner-matching", self.partners.as_ref().err()),
            ("compliance", self.compliance.as_ref().err()),
        ]
        .into_iter()
        .filter_map(|(name, e)| e.map(|e| (name, e.as_str())))
        .collect()
    }
}

/// The NIST SP 800-53 families whose controls join the knowledge base as guidance: incident
/// response, contingency planning, awareness and training, identification and authentication,
/// system and information integrity, risk assessment.
pub const GUIDANCE_FAMILIES: [&str; 6] = ["IR", "CP", "AT", "IA", "SI", "RA"];

/// ATT&CK and the knowledge passages (techniques, procedure examples, mitigations, CWE, docs,
/// SP 800-53 guidance), read from the data sets. ATT&CK is parsed on its own thread.
fn read_knowledge(paths: &AgentPaths) -> Result<(Attack, Vec<Passage>), String> {
    std::thread::scope(|scope| {
        let attack = scope.spawn(|| Attack::load(&paths.data_dir.join("attack-enterprise")));
        let weaknesses = cwe::load(&paths.data_dir.join("cwe")).map_err(|e| e.to_string())?;
        let guidance = crate::catalogues::guidance_passages(
            &paths.data_dir.join(crate::catalogues::PUBLISHED_DATASET),
            &GUIDANCE_FAMILIES,
        )
        .map_err(|e| e.to_string())?;
        let attack = attack
            .join()
            .map_err(|_| "reading ATT&CK panicked".to_string())?
            .map_err(|e| e.to_string())?;
        let mut passages = knowledge::technique_passages(&attack);
        passages.extend(crate::techniques::procedure_passages(&attack));
        passages.extend(knowledge::mitigation_passages(&attack));
        passages.extend(knowledge::weakness_passages(&weaknesses));
        passages.extend(knowledge::docs::passages());
        passages.extend(guidance);
        Ok((attack, passages))
    })
}

/// The knowledge index over `passages` (embedded once, then cached).
async fn index_knowledge(
    encoder: &EmbeddingBackend,
    paths: &AgentPaths,
    attack: Attack,
    passages: Vec<Passage>,
    progress: &dyn Progress,
) -> Result<(Arc<Attack>, Arc<KnowledgeIndex>), String> {
    progress.stage("embedding the knowledge base", passages.len());
    let index = KnowledgeIndex::load_or_build(
        KNOWLEDGE_INDEX,
        passages,
        encoder,
        &paths.cache_dir,
        &|done, _| progress.advance(done),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok((Arc::new(attack), Arc::new(index)))
}

async fn load_compliance(
    encoder: &EmbeddingBackend,
    paths: &AgentPaths,
    read: Vec<Catalogue>,
    cloud: Option<crate::cloud::AnswerProvider>,
    progress: &dyn Progress,
) -> Result<Arc<ComplianceAgent>, AgentError> {
    let mut catalogues = Vec::new();
    for catalogue in read {
        let passages = catalogue.passages();
        progress.stage(
            &format!("embedding {} controls", catalogue.framework),
            passages.len(),
        );
        let name = format!("{CONTROLS_INDEX_PREFIX}{}", catalogue.framework);
        let index = KnowledgeIndex::load_or_build(
            &name,
            passages,
            encoder,
            &paths.cache_dir,
            &|done, _| progress.advance(done),
        )
        .await?;
        catalogues.push((catalogue, Arc::new(index)));
    }
    Ok(Arc::new(
        ComplianceAgent::new(encoder.clone(), catalogues).with_cloud(cloud),
    ))
}

/// The five numeric agents. Anomaly detection, forecasting and allocation need nothing
/// beyond the request; client health reads its models from `<models_dir>/client-health`;
/// federated learning needs the `modeldata` data set.
pub struct NumericAgents {
    pub anomaly: Loaded<AnomalyAgent>,
    pub revenue: Loaded<RevenueAgent>,
    pub resource: Loaded<ResourceAgent>,
    pub client_health: Loaded<ClientHealthAgent>,
    pub federated: Loaded<FederatedAgent>,
}

/// Folder of the client-health models under the models folder.
pub const CLIENT_HEALTH_DIR: &str = "client-health";

impl NumericAgents {
    /// No agent loaded, for the same reason.
    pub fn none(reason: &str) -> Self {
        Self {
            anomaly: Err(reason.into()),
            revenue: Err(reason.into()),
            resource: Err(reason.into()),
            client_health: Err(reason.into()),
            federated: Err(reason.into()),
        }
    }

    /// Loads every selected numeric agent it can; trained client-health models, federated runs
    /// and the privacy ledger go to `state`.
    pub fn load(
        paths: &AgentPaths,
        selection: &AgentSelection,
        state: &Arc<dyn UserState>,
    ) -> Self {
        let excluded = selection.excluded_reason();
        let federated = if selection.contains(AgentKind::FederatedLearning) {
            datasets::churn_records(&paths.data_dir.join("modeldata")).and_then(|records| {
                FederatedAgent::new(
                    &records,
                    datasets::CHURN_TARGET,
                    datasets::CHURN_SOURCE,
                    state.clone(),
                )
                .map(Arc::new)
                .map_err(|e| e.to_string())
            })
        } else {
            Err(excluded.clone())
        };
        Self {
            anomaly: pick(selection, AgentKind::AnomalyDetection, &excluded, || {
                AnomalyAgent
            }),
            revenue: pick(selection, AgentKind::RevenueForecasting, &excluded, || {
                RevenueAgent
            }),
            resource: pick(selection, AgentKind::ResourceAllocation, &excluded, || {
                ResourceAgent
            }),
            client_health: pick(selection, AgentKind::ClientHealth, &excluded, || {
                ClientHealthAgent::new(ModelStore::shared(
                    paths.models_dir.join(CLIENT_HEALTH_DIR),
                    state.clone(),
                ))
            }),
            federated,
        }
    }

    /// `(agent, why it is not loaded)` for every agent that failed to load.
    pub fn failures(&self) -> Vec<(&'static str, &str)> {
        [
            ("anomaly-detection", self.anomaly.as_ref().err()),
            ("revenue-forecasting", self.revenue.as_ref().err()),
            ("resource-allocation", self.resource.as_ref().err()),
            ("client-health", self.client_health.as_ref().err()),
            ("federated-learning", self.federated.as_ref().err()),
        ]
        .into_iter()
        .filter_map(|(name, e)| e.map(|e| (name, e.as_str())))
        .collect()
    }
}

/// `loaded` when `kind` is selected, else the reason it is not.
fn keep<A>(
    selection: &AgentSelection,
    kind: AgentKind,
    excluded: &str,
    loaded: Loaded<A>,
) -> Loaded<A> {
    if selection.contains(kind) {
        loaded
    } else {
        Err(excluded.to_string())
    }
}

/// The agent `make` builds when `kind` is selected, else the reason it is not.
fn pick<A>(
    selection: &AgentSelection,
    kind: AgentKind,
    excluded: &str,
    make: impl FnOnce() -> A,
) -> Loaded<A> {
    if selection.contains(kind) {
        Ok(Arc::new(make()))
    } else {
        Err(excluded.to_string())
    }
}
