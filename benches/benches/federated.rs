//! Federated vs centralised training on modeldata's `mlc_churn`: held-out accuracy and AUC of
//! FedAvg with DP-SGD (5 simulated MSPs, 10 rounds, secure aggregation) at several privacy
//! budgets, beside the centralised DP-SGD baseline at the same epsilon and the centralised
//! non-private one (all computed in the same run by the federated agent).
//!
//! `cargo bench -p mesh-benches --bench federated -- [--data-dir D] [--jsonl FILE]`

use mesh_agents::datasets::{churn_records, CHURN_SOURCE, CHURN_TARGET};
use mesh_agents::federated::{FederatedAgent, FederatedRequest};
use mesh_agents::Agent;
use mesh_benches::{arg_value, emit};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let data_dir = arg_value("data-dir").map_or_else(mesh_testing::workspace_data_dir, Into::into);
    let records =
        churn_records(&data_dir.join("modeldata")).expect("run `msp-mesh data pull modeldata`");
    let agent = FederatedAgent::new(
        &records,
        CHURN_TARGET,
        CHURN_SOURCE,
        std::sync::Arc::new(mesh_agents::user_state::MemoryState::new()),
    )
    .expect("encode");
    for epsilon in [0.5, 1.0, 3.0, 8.0] {
        let started = std::time::Instant::now();
        let r = agent
            .handle(FederatedRequest {
                model_type: None,
                participating_msps: Some(5),
                privacy_epsilon: Some(epsilon),
                delta: Some(1e-5),
                rounds: Some(10),
                local_steps: Some(5),
                secure_aggregation: Some(true),
                partition: None,
                seed: Some(42),
            })
            .await
            .expect("run");
        emit(&serde_json::json!({
            "bench": "federated", "impl": "ours", "epsilon": epsilon,
            "epsilon_spent": r.privacy_budget_used, "noise_multiplier": r.noise_multiplier,
            "federated_accuracy": r.new_accuracy, "federated_auc": r.new_auc,
            "centralised_dp_accuracy": r.centralised_dp.as_ref().map(|b| b.accuracy),
            "centralised_dp_auc": r.centralised_dp.as_ref().and_then(|b| b.auc),
            "centralised_accuracy": r.centralised_non_private.as_ref().map(|b| b.accuracy),
            "centralised_auc": r.centralised_non_private.as_ref().and_then(|b| b.auc),
            "untrained_accuracy": r.previous_accuracy,
            "majority_class_accuracy": r.majority_class_accuracy,
            "seconds": started.elapsed().as_secs_f64(),
        }));
    }
}
