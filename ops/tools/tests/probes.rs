//! The fast subset of the demo probe set, through the real HTTP path of a node on the demo
//! catalog with the multilingual encoder: each line of `probes/ci.tsv` is a case, checked by
//! the same helper as `inkling eval probe` (the whole set is `probes/demo.tsv`).

use inkling_actors::ActorConfig;
use inkling_actors::model_pool::ModelPoolConfig;
use inkling_models::encoder::ModelName;
use inkling_node::CatalogSource;
use inkling_tools::eval::probe;

fn probes(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("probes")
        .join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ci_probes_pass_on_the_demo_catalog() {
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.deps/models");
    let actors = ActorConfig {
        encoder: Some(ModelPoolConfig::new(ModelName::MultilingualE5Small, models)),
        ..Default::default()
    };
    let cases = probe::read(&probes("ci.tsv")).unwrap();
    let report = probe::evaluate(cases, CatalogSource::Demo, actors)
        .await
        .unwrap();
    probe::print_report(&report);
    assert!(report.failures.is_empty(), "{:#?}", report.failures);
}

#[test]
fn every_probe_file_parses() {
    for name in ["ci.tsv", "demo.tsv", "flipkart.tsv", "openbg.tsv"] {
        let cases = probe::read(&probes(name)).unwrap();
        assert!(!cases.is_empty(), "{name}");
    }
    assert!(probe::read(&probes("demo.tsv")).unwrap().len() >= 150);
}
