//! The heads `msp-mesh models train` produced on this machine (scripts/test.sh trains the
//! missing ones) reproduce the figures recorded in the manifest, and read as they should.

use mesh_agents::head::ClassificationHead;
use mesh_models::{Manifest, Source};

#[test]
fn trained_heads_reproduce_the_recorded_metrics() {
    let manifest = Manifest::builtin();
    let heads: Vec<_> = manifest
        .models
        .iter()
        .filter(|m| matches!(m.source, Source::Trained { .. }))
        .collect();
    assert_eq!(heads.len(), 3);
    for entry in heads {
        let dir = mesh_testing::workspace_models_dir().join(&entry.id);
        let head = ClassificationHead::load_dir(&dir)
            .unwrap_or_else(|e| panic!("{e} (run `msp-mesh prepare`; scripts/test.sh does)"));
        let config = head.config();
        assert_eq!(config.labels, entry.labels, "{}", entry.id);
        assert_eq!(config.base_model, "minilm-l6-distilbert@1");
        assert!(config.accepts_encoder("all-minilm-l6-v2@1"));
        assert!(config.temperature > 0.05 && config.temperature < 20.0);
        assert!(!entry.metrics.is_empty(), "{} records no metrics", entry.id);
        for (name, recorded) in &entry.metrics {
            // Held-out figures exist only after `--evaluate`; cross-validation always runs.
            let Some(measured) = config.metrics.get(name) else {
                assert!(
                    name.starts_with("heldout_"),
                    "{}: {name} missing from head.json",
                    entry.id
                );
                continue;
            };
            assert!(
                (measured - recorded).abs() <= 0.03,
                "{}: {name} = {measured:.4}, manifest records {recorded:.4}",
                entry.id
            );
        }
    }
}
