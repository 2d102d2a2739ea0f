//! Fakes of what the ranking pipelines reach outside themselves, for their tests: shards
//! that hold a few products each and answer like an index would, and online signals with
//! a fixed answer. Both record what they were asked.

use std::collections::HashMap;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use inkling_domain::Product;
use inkling_models::recommend::RankerModel;
use inkling_storage::{IndexHit, IndexQuery, Retrieval};
use parking_lot::Mutex;

use super::context::{CandidateSignals, IndexShards, RankingContext};
use crate::ActorError;
use crate::config::ActorConfig;
use crate::signals::{SignalAnswer, SignalQuery};

/// A product a fake shard holds, with its embedding if it has one.
pub struct Stored {
    pub product: Arc<Product>,
    pub vector: Option<Vec<f32>>,
}

pub fn stored(product: Product, vector: Option<&[f32]>) -> Stored {
    Stored {
        product: Arc::new(product),
        vector: vector.map(<[f32]>::to_vec),
    }
}

/// Which retrieval a shard was asked for, without its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Asked {
    Text,
    Vector,
    Affinity,
    TopRated,
}

/// Shards that each hold the products they are given: text hits are the titles sharing a
/// word with the query (scored by how many), vector hits every embedded product by dot
/// product, best-rated hits every rated product by its rating.
pub struct FakeShards {
    shards: Vec<Vec<Stored>>,
    /// Shards that answer every call with this error (a timeout, say).
    failing: HashMap<usize, ActorError>,
    pub searches: Mutex<Vec<(usize, Asked)>>,
    pub lookups: Mutex<Vec<(usize, Vec<String>)>>,
    pub vector_asks: Mutex<Vec<(usize, String)>>,
}

impl FakeShards {
    pub fn new(shards: Vec<Vec<Stored>>) -> Self {
        Self {
            shards,
            failing: HashMap::new(),
            searches: Mutex::default(),
            lookups: Mutex::default(),
            vector_asks: Mutex::default(),
        }
    }

    pub fn failing(mut self, shard: usize, error: ActorError) -> Self {
        self.failing.insert(shard, error);
        self
    }

    /// The distinct retrievals asked of any shard, in order.
    pub fn asked(&self) -> Vec<Asked> {
        let mut asked: Vec<Asked> = self.searches.lock().iter().map(|(_, a)| *a).collect();
        asked.sort();
        asked.dedup();
        asked
    }

    fn answer<T>(
        &self,
        shard: usize,
        answer: impl FnOnce(&[Stored]) -> T,
    ) -> Result<T, ActorError> {
        if let Some(error) = self.failing.get(&shard) {
            return Err(error.clone());
        }
        Ok(answer(&self.shards[shard]))
    }
}

impl IndexShards for FakeShards {
    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard a product was given to; ids no shard holds are placed as in production.
    fn shard_of(&self, product_id: &str) -> usize {
        let held = |shard: &Vec<Stored>| shard.iter().any(|s| s.product.id == product_id);
        self.shards
            .iter()
            .position(held)
            .unwrap_or_else(|| crate::placement::shard_of(product_id, self.shards.len()))
    }

    fn search(
        &self,
        shard: usize,
        query: IndexQuery,
    ) -> BoxFuture<'_, Result<Vec<IndexHit>, ActorError>> {
        let asked = match &query.retrieval {
            Retrieval::Text(_) => Asked::Text,
            Retrieval::Vector(_) => Asked::Vector,
            Retrieval::Affinity { .. } => Asked::Affinity,
            Retrieval::TopRated => Asked::TopRated,
        };
        self.searches.lock().push((shard, asked));
        let answer = self.answer(shard, |products| {
            let mut hits: Vec<IndexHit> = products
                .iter()
                .filter(|stored| query.filters.accepts(&stored.product))
                .filter_map(|stored| {
                    let score = score(stored, &query.retrieval)?;
                    let product = stored.product.clone();
                    Some(IndexHit { product, score })
                })
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score));
            hits.truncate(query.limit);
            hits
        });
        async move { answer }.boxed()
    }

    fn lookup(
        &self,
        shard: usize,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Vec<Arc<Product>>, ActorError>> {
        self.lookups.lock().push((shard, ids.clone()));
        let answer = self.answer(shard, |products| {
            let held = products.iter().filter(|s| ids.contains(&s.product.id));
            held.map(|stored| stored.product.clone()).collect()
        });
        async move { answer }.boxed()
    }

    fn vector_of(
        &self,
        shard: usize,
        product_id: String,
    ) -> BoxFuture<'_, Result<Option<Vec<f32>>, ActorError>> {
        self.vector_asks.lock().push((shard, product_id.clone()));
        let answer = self.answer(shard, |products| {
            let held = products.iter().find(|s| s.product.id == product_id);
            held.and_then(|stored| stored.vector.clone())
        });
        async move { answer }.boxed()
    }
}

/// How a fake index scores `stored` for `retrieval`; `None` when it is no hit.
fn score(stored: &Stored, retrieval: &Retrieval) -> Option<f32> {
    let product = &stored.product;
    match retrieval {
        Retrieval::Text(query) => {
            let title = product.title.to_lowercase();
            let title_words: Vec<&str> = title.split_whitespace().collect();
            let query = query.to_lowercase();
            let shared = query
                .split_whitespace()
                .filter(|word| title_words.contains(word))
                .count();
            (shared > 0).then_some(shared as f32)
        }
        Retrieval::Vector(query) => {
            let vector = stored.vector.as_ref()?;
            Some(vector.iter().zip(query).map(|(a, b)| a * b).sum())
        }
        Retrieval::TopRated => product.rating,
        Retrieval::Affinity { categories, brands } => {
            let in_category = categories
                .iter()
                .filter(|(category, _)| product.category_path.contains(category))
                .map(|(_, weight)| weight);
            let of_brand = brands
                .iter()
                .filter(|(brand, _)| product.brand.as_ref() == Some(brand))
                .map(|(_, weight)| weight);
            let weight: f32 = in_category.chain(of_brand).sum();
            (weight > 0.0).then_some(weight)
        }
    }
}

/// Online signals that give every query the same answer, or the same error.
pub struct FakeSignals {
    answer: Result<SignalAnswer, ActorError>,
    pub asked: Mutex<Vec<SignalQuery>>,
}

impl FakeSignals {
    pub fn answering(answer: Result<SignalAnswer, ActorError>) -> Self {
        Self {
            answer,
            asked: Mutex::default(),
        }
    }
}

impl CandidateSignals for FakeSignals {
    fn candidates(&self, query: SignalQuery) -> BoxFuture<'_, Result<SignalAnswer, ActorError>> {
        self.asked.lock().push(query);
        let answer = self.answer.clone();
        async move { answer }.boxed()
    }
}

/// A context over the fakes, with the default configuration and models.
pub fn context(shards: Arc<FakeShards>, signals: Arc<FakeSignals>) -> RankingContext {
    RankingContext {
        shards,
        signals,
        recommender: Arc::new(RankerModel::default()),
        search_ranker: None,
        config: ActorConfig::default(),
    }
}

/// The ids of a ranked list's items, in order.
pub fn ids(list: &crate::protocol::RankedList) -> Vec<&str> {
    list.items
        .iter()
        .map(|item| item.product.id.as_str())
        .collect()
}
