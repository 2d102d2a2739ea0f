//! Query understanding for sessions: slot extraction against the live catalog vocabulary,
//! intent classification through the model pool, and the vocabulary's upkeep as the catalog
//! changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::ActorError;
use crate::embedder::Embedder;
use inkling_domain::product_words::{brand_names, names_of_category};
use inkling_domain::{Product, Taxonomy};
use inkling_models::encoder::TextKind;
use inkling_models::intent::classifier::examples;
use inkling_models::intent::{
    CatalogVocabulary, DialogueState, IntentClass, IntentClassifier, SlotExtractor, Turn,
    Understanding,
};

/// The slot extractor every session reads, swapped whole when the catalog changes.
#[derive(Clone)]
pub struct SharedSlotExtractor(Arc<ArcSwap<SlotExtractor>>);

impl Default for SharedSlotExtractor {
    fn default() -> Self {
        let empty = SlotExtractor::new(&CatalogVocabulary::default());
        Self(Arc::new(ArcSwap::from_pointee(empty)))
    }
}

impl SharedSlotExtractor {
    pub fn current(&self) -> Arc<SlotExtractor> {
        self.0.load_full()
    }

    fn replace(&self, extractor: SlotExtractor) {
        self.0.store(Arc::new(extractor));
    }
}

/// Counts of every category and brand in the catalog, so deletes and updates keep the
/// vocabulary exact without rescanning the catalog.
pub struct VocabularyTracker {
    categories: BTreeMap<String, usize>,
    brands: BTreeMap<String, usize>,
    /// Per title word, how many products use it in their title without it being a word of
    /// their own brand: how often a brand's name is an ordinary word ("coffee", "black").
    title_words: BTreeMap<String, usize>,
    taxonomy: Taxonomy,
    shared: SharedSlotExtractor,
}

impl VocabularyTracker {
    pub fn new(taxonomy: Taxonomy, shared: SharedSlotExtractor) -> Self {
        Self {
            categories: BTreeMap::new(),
            brands: BTreeMap::new(),
            title_words: BTreeMap::new(),
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
        for word in words_beside_brand(product) {
            *self.title_words.entry(word).or_default() += 1;
        }
    }

    pub fn remove(&mut self, product: &Product) {
        for category in &product.category_path {
            decrement(&mut self.categories, category);
        }
        if let Some(brand) = &product.brand {
            decrement(&mut self.brands, brand);
        }
        for word in words_beside_brand(product) {
            decrement(&mut self.title_words, &word);
        }
    }

    /// Rebuilds the extractor from the current counts and hands it to every session.
    pub fn publish(&self) {
        let mut vocabulary = CatalogVocabulary::default();
        // A name two categories share goes to the first added: own names and the taxonomy's
        // aliases (curated: "bracelets" means "Bangles, Bracelets & Armlets", not a small
        // "Bracelets" leaf), then the dictionary's translations, then parts; so a category
        // called "手机" keeps that word from another's translation.
        for category in self.categories.keys() {
            vocabulary.add_category(category, self.taxonomy.aliases_of(category));
        }
        for category in self.categories.keys() {
            vocabulary.add_category(category, &names_of_category(category));
        }
        for category in self.categories.keys() {
            vocabulary.add_category_parts(category);
        }
        // Brands with more products first, so a name two brands share ("小米" of "MIUI/小米"
        // and of "小米（家电）") reads as the one with real support.
        let mut brands: Vec<(&String, &usize)> = self.brands.iter().collect();
        brands.sort_by_key(|(_, count)| std::cmp::Reverse(**count));
        for (brand, count) in brands {
            let aliases: Vec<String> = brand_names(brand)
                .iter()
                .flat_map(|name| self.taxonomy.brand_aliases_of(name))
                .collect();
            vocabulary.add_brand_with(brand, &aliases, self.brand_confidence(brand, *count));
        }
        self.shared.replace(SlotExtractor::new(&vocabulary));
    }

    /// The share of the products that use the brand's first word which are the brand's own:
    /// 1 for "Xiaomi", little for a brand named "Coffee" among 20 coffee mugs.
    fn brand_confidence(&self, brand: &str, count: usize) -> f64 {
        let Some(word) = lowercase_words(brand).next() else {
            return 1.0;
        };
        let others = self.title_words.get(&word).copied().unwrap_or(0);
        count as f64 / (count + others) as f64
    }
}

fn lowercase_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The distinct words of the product's title that are not words of its own brand.
fn words_beside_brand(product: &Product) -> BTreeSet<String> {
    let brand: BTreeSet<String> = product
        .brand
        .as_deref()
        .map(|brand| lowercase_words(brand).collect())
        .unwrap_or_default();
    lowercase_words(&product.title)
        .filter(|word| !brand.contains(word))
        .collect()
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
    pub embedder: Embedder,
    /// Empty until the example phrasings are embedded: on a node without a model pool of
    /// its own, that waits for the mesh to reach one. Queries are embedded meanwhile, but
    /// get no intent class.
    classifier: Arc<ArcSwapOption<IntentClassifier>>,
}

/// Wait between attempts to build the classifier while no model pool answers.
const CLASSIFIER_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

impl IntentModel {
    /// Builds the classifier now if a pool answers, and keeps trying in the background if
    /// none does yet.
    pub async fn start(embedder: Embedder) -> Self {
        let model = Self {
            embedder,
            classifier: Arc::default(),
        };
        if let Err(error) = model.learn_examples().await {
            tracing::info!(%error, "intent classifier waits for a model pool");
            let (embedder, classifier) = (model.embedder.clone(), model.classifier.clone());
            tokio::spawn(async move {
                let waiting = Self {
                    embedder,
                    classifier,
                };
                while waiting.learn_examples().await.is_err() {
                    tokio::time::sleep(CLASSIFIER_RETRY).await;
                }
            });
        }
        model
    }

    /// Embeds the shipped example phrasings through a pool and builds the classifier.
    async fn learn_examples(&self) -> Result<(), ActorError> {
        let (labels, texts): (Vec<IntentClass>, Vec<String>) = examples().into_iter().unzip();
        // Many texts at once, on a cold encoder: a batch job's deadline, not a query's.
        let warm_up = Embedder {
            query_timeout: self.embedder.passage_timeout,
            ..self.embedder.clone()
        };
        let vectors = warm_up.embed(TextKind::Query, texts).await?;
        let classifier = IntentClassifier::new(labels.into_iter().zip(vectors).collect());
        self.classifier.store(Some(Arc::new(classifier)));
        Ok(())
    }

    fn classify(&self, vector: &[f32]) -> (IntentClass, f32) {
        match &*self.classifier.load() {
            Some(classifier) => classifier.classify(vector),
            None => (IntentClass::Other, 0.0),
        }
    }
}

/// A query as understood, with the embedding of what it searches for (its topic) when the
/// model was asked.
#[derive(Clone)]
pub struct ReadQuery {
    pub understanding: Understanding,
    pub vector: Option<Vec<f32>>,
}

/// Understands queries; without a model it still extracts slots and tracks the dialogue.
pub struct IntentService {
    pub model: Option<IntentModel>,
    pub slots: SharedSlotExtractor,
}

impl IntentService {
    /// Reads `query` in the context of `dialogue` and advances the dialogue. With
    /// `use_model` off (lexical search) no encoder is involved: slots and dialogue only.
    pub async fn understand(
        &self,
        query: &str,
        dialogue: &mut DialogueState,
        use_model: bool,
    ) -> Result<ReadQuery, ActorError> {
        let extractor = self.slots.current();
        let turn = Turn {
            query: query.to_string(),
            slots: extractor.extract(query),
            product_words: extractor.product_words(query),
            mentions: extractor.mentions(query),
        };
        let model = self.model.as_ref().filter(|_| use_model);
        let Some(model) = model else {
            let understanding = dialogue.advance(IntentClass::Other, 0.0, turn);
            return Ok(ReadQuery {
                understanding,
                vector: None,
            });
        };
        let vector = model.embedder.embed_query(query).await?;
        let (intent, confidence) = model.classify(&vector);
        let understanding = dialogue.advance(intent, confidence, turn);
        // A follow-up's words say nothing about products: search means its topic.
        let vector = if understanding.topic == query {
            Some(vector)
        } else if understanding.topic.is_empty() {
            None
        } else {
            Some(model.embedder.embed_query(&understanding.topic).await?)
        };
        Ok(ReadQuery {
            understanding,
            vector,
        })
    }
}
