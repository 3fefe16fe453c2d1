//! The DynamoDB tables' names: the plan's by default, each a flag with an environment fallback.
//! Settings, so they exist in every build (the DynamoDB store itself needs the `aws` feature).

/// The plan's table names.
pub const AGENT_STATE_TABLE: &str = "AgentState";
pub const AGENT_RESULTS_TABLE: &str = "AgentResults";
pub const NETWORK_INTELLIGENCE_TABLE: &str = "NetworkIntelligence";
pub const THREAT_EVENTS_TABLE: &str = "ThreatEvents";
pub const CONNECTIONS_TABLE: &str = "WebSocketConnections";
/// The event log (not in the plan, which names only the Kinesis stream: a stream cannot be
/// read from an offset of the mesh's own).
pub const EVENT_LOG_TABLE: &str = "MeshEventLog";
/// What users give the agents and the additive ledgers ([`mesh_agents::user_state::UserState`]): `space` (`doc` or
/// `ledger`), `key`.
pub const USER_STATE_TABLE: &str = "MeshUserState";

/// Names of the tables (the plan's by default).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Tables {
    #[arg(
        long = "table-agent-state",
        env = "MESH_TABLE_AGENT_STATE",
        default_value = AGENT_STATE_TABLE
    )]
    pub agent_state: String,
    #[arg(
        long = "table-agent-results",
        env = "MESH_TABLE_AGENT_RESULTS",
        default_value = AGENT_RESULTS_TABLE
    )]
    pub agent_results: String,
    #[arg(
        long = "table-network-intelligence",
        env = "MESH_TABLE_NETWORK_INTELLIGENCE",
        default_value = NETWORK_INTELLIGENCE_TABLE
    )]
    pub network_intelligence: String,
    #[arg(
        long = "table-threat-events",
        env = "MESH_TABLE_THREAT_EVENTS",
        default_value = THREAT_EVENTS_TABLE
    )]
    pub threat_events: String,
    #[arg(
        long = "table-connections",
        env = "MESH_TABLE_CONNECTIONS",
        default_value = CONNECTIONS_TABLE
    )]
    pub connections: String,
    #[arg(
        long = "table-event-log",
        env = "MESH_TABLE_EVENT_LOG",
        default_value = EVENT_LOG_TABLE
    )]
    pub event_log: String,
    #[arg(
        long = "table-user-state",
        env = "MESH_TABLE_USER_STATE",
        default_value = USER_STATE_TABLE
    )]
    pub user_state: String,
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            agent_state: AGENT_STATE_TABLE.into(),
            agent_results: AGENT_RESULTS_TABLE.into(),
            network_intelligence: NETWORK_INTELLIGENCE_TABLE.into(),
            threat_events: THREAT_EVENTS_TABLE.into(),
            connections: CONNECTIONS_TABLE.into(),
            event_log: EVENT_LOG_TABLE.into(),
            user_state: USER_STATE_TABLE.into(),
        }
    }
}
