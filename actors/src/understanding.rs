//! Query understanding for sessions: slot extraction against the live catalog vocabulary,
//! intent classification through the model pool, and the vocabulary's upkeep as the catalog
//! changes.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use inkling_models::encoder::{ModelName, TextKind};
use inkling_models::intent::classifier::examples;
use inkling_models::intent::{
    CatalogVocabulary, DialogueState, IntentClass, IntentClassifier, SlotExtractor, Understanding,
};
use inkling_storage::{Product, Taxonomy};
use ractor::ActorRef;

use crate::model_pool::{EmbedRequest, ModelPoolMsg};
use crate::{ActorError, ask};

/// The slot extractor every session reads, swapped whole when the catalog changes.
#[derive(Clone)]
pub struct SharedSlotExtractor(Arc<RwLock<Arc<SlotExtractor>>>);

impl Default for SharedSlotExtractor {
    fn default() -> Self {
        let empty = SlotExtractor::new(&CatalogVocabulary::default());
        Self(Arc::new(RwLock::new(Arc::new(empty))))
    }
}

impl SharedSlotExtractor {
    pub fn current(&self) -> Arc<SlotExtractor> {
        self.0.read().expect("slot extractor lock").clone()
    }

    fn replace(&self, extractor: SlotExtractor) {
        *self.0.write().expect("slot extractor lock") = Arc::new(extractor);
    }
}

/// Counts of every category and brand in the catalog, so deletes and updates keep the
/// vocabulary exact without rescanning the catalog.
pub struct VocabularyTracker {
    categories: BTreeMap<String, usize>,
    brands: BTreeMap<String, usize>,
    taxonomy: Taxonomy,
    shared: SharedSlotExtractor,
}

impl VocabularyTracker {
    pub fn new(taxonomy: Taxonomy, shared: SharedSlotExtractor) -> Self {
        Self {
            categories: BTreeMap::new(),
            brands: BTreeMap::new(),
            taxonomy,
            shared,
        }
    }

    pub fn add(&mut self, product: &Product) {
        for category in &product.category_path {
            *self.categories.entry(category.clone()).or_default() += 1;
        }
        if let Some(brand) = &product.brand {
            *self.brands.entry(brand.clone()).or_default() += 1;
        }
    }

    pub fn remove(&mut self, product: &Product) {
        for category in &product.category_path {
            decrement(&mut self.categories, category);
        }
        if let Some(brand) = &product.brand {
            decrement(&mut self.brands, brand);
        }
    }

    /// Rebuilds the extractor from the current counts and hands it to every session.
    pub fn publish(&self) {
        let mut vocabulary = CatalogVocabulary::default();
        for category in self.categories.keys() {
            vocabulary.add_category(category, self.taxonomy.aliases_of(category));
        }
        for brand in self.brands.keys() {
            vocabulary.add_brand(brand);
        }
        self.shared.replace(SlotExtractor::new(&vocabulary));
    }
}

fn decrement(counts: &mut BTreeMap<String, usize>, key: &str) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}

/// The encoder-backed part of understanding.
pub struct IntentModel {
    pub pool: ActorRef<ModelPoolMsg>,
    pub model: ModelName,
    pub classifier: IntentClassifier,
}

impl IntentModel {
    /// Embeds the shipped example phrasings through the pool, in requests of at most
    /// `chunk` texts so a small queue accepts them, and builds the classifier.
    pub async fn build(
        pool: ActorRef<ModelPoolMsg>,
        model: ModelName,
        chunk: usize,
        timeout: Duration,
    ) -> Result<Self, ActorError> {
        let (labels, texts): (Vec<IntentClass>, Vec<String>) = examples().into_iter().unzip();
        let mut vectors = Vec::with_capacity(texts.len());
        for part in texts.chunks(chunk.max(1)) {
            vectors.extend(embed(&pool, model, part.to_vec(), timeout).await?);
        }
        let classifier = IntentClassifier::new(labels.into_iter().zip(vectors).collect());
        Ok(Self {
            pool,
            model,
            classifier,
        })
    }
}

async fn embed(
    pool: &ActorRef<ModelPoolMsg>,
    model: ModelName,
    texts: Vec<String>,
    timeout: Duration,
) -> Result<Vec<Vec<f32>>, ActorError> {
    let request = EmbedRequest {
        model,
        kind: TextKind::Query,
        texts,
    };
    ask(
        pool,
        |reply| ModelPoolMsg::Embed(request, reply),
        timeout,
        "model pool",
    )
    .await?
}

/// Understands queries; without a model it still extracts slots and tracks the dialogue.
pub struct IntentService {
    pub model: Option<IntentModel>,
    pub slots: SharedSlotExtractor,
    pub timeout: Duration,
}

impl IntentService {
    /// Reads `query` in the context of `dialogue` and advances the dialogue.
    pub async fn understand(
        &self,
        query: &str,
        dialogue: &mut DialogueState,
    ) -> Result<Understanding, ActorError> {
        let turn = self.slots.current().extract(query);
        let (intent, confidence) = match &self.model {
            Some(model) => {
                let vector = embed(
                    &model.pool,
                    model.model,
                    vec![query.to_string()],
                    self.timeout,
                )
                .await?;
                model.classifier.classify(&vector[0])
            }
            None => (IntentClass::Other, 0.0),
        };
        Ok(dialogue.advance(intent, confidence, turn))
    }
}
