//! The ranker actor: scatters a request to every index shard in parallel, gathers what
//! arrives before the deadline, and merges the hits with the shopper's profile.

use std::sync::Arc;

use inkling_models::fusion::{RankedHits, by_score, fuse};
use inkling_models::intent::Understanding;
use inkling_models::{Budget, Candidate, CandidateSource, Matched, RankContext, rank};
use std::collections::HashMap;

use inkling_storage::{CatalogStore, Filters, IndexQuery, Profile, Retrieval, now_ms};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;

use crate::config::ActorConfig;
use crate::index_shard::IndexShardMsg;
use crate::protocol::{
    MissingShard, RankedItem, RankedList, RecommendRequest, SearchRequest, effective_filters,
};
use crate::session::session_key;
use crate::signals::{SignalQuery, SignalSource, SignalsMsg};
use crate::{ActorError, ask};

/// How many liked categories and brands steer recommendation retrieval.
const AFFINITY_FANOUT: usize = 5;
/// How many of the shopper's latest items (and liked categories) the online signals expand.
const SIGNAL_ANCHORS: usize = 3;
/// Candidates the online signals propose per anchor.
const SIGNAL_CANDIDATES: usize = 50;
/// Items of the current session that session-kNN compares with past sessions.
const SESSION_ITEMS: usize = 20;

#[derive(RactorClusterMessage)]
pub enum RankerMsg {
    /// Ranks search hits for the query, personalised by the profile and shaped by what the
    /// query was understood to ask.
    #[rpc]
    Search(
        SearchRequest,
        Box<Profile>,
        Option<Box<Understanding>>,
        Option<Vec<f32>>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    /// Ranks recommendations from the profile alone.
    #[rpc]
    Recommend(
        RecommendRequest,
        Box<Profile>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
}

pub struct Ranker;

pub struct RankerState {
    pub shards: Vec<ActorRef<IndexShardMsg>>,
    pub signals: ActorRef<SignalsMsg>,
    /// The node's copy of the catalog, to turn signal item ids into products.
    pub catalog: CatalogStore,
    pub config: ActorConfig,
}

impl Actor for Ranker {
    type Msg = RankerMsg;
    type State = Arc<RankerState>;
    type Arguments = RankerState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: RankerState,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(Arc::new(state))
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let state = state.clone();
        // Each request runs as its own task so a slow shard never stalls the mailbox.
        match message {
            RankerMsg::Search(request, profile, understanding, vector, reply) => {
                tokio::spawn(async move {
                    let understanding = understanding.map(|u| *u);
                    let answer = search(&state, request, &profile, understanding, vector).await;
                    let _ = reply.send(Ok(answer));
                });
            }
            RankerMsg::Recommend(request, profile, reply) => {
                tokio::spawn(async move {
                    let _ = reply.send(Ok(recommend(&state, request, &profile).await));
                });
            }
        }
        Ok(())
    }
}

async fn search(
    state: &RankerState,
    request: SearchRequest,
    profile: &Profile,
    understanding: Option<Understanding>,
    query_vector: Option<Vec<f32>>,
) -> RankedList {
    let constraints = understanding
        .as_ref()
        .map(|understanding| understanding.constraints.clone())
        .unwrap_or_default();
    let filters = effective_filters(&request.filters, &constraints);
    let mode = request.mode;
    let lexical = async {
        if !mode.uses_text() {
            return (Vec::new(), Vec::new());
        }
        scatter(state, Retrieval::Text(request.query.clone()), &filters).await
    };
    let semantic = async {
        match query_vector.filter(|_| mode.uses_vectors()) {
            Some(vector) => scatter(state, Retrieval::Vector(vector), &filters).await,
            None => (Vec::new(), Vec::new()),
        }
    };
    // A category or brand asked for in words is a candidate source of its own: the query
    // text ("有没有8000元以内的？") often says nothing else a text index could match.
    let requested = async {
        if constraints.category.is_none() && constraints.brand.is_none() {
            return (Vec::new(), Vec::new());
        }
        scatter(state, Retrieval::TopRated, &filters).await
    };
    let ((words, words_missing), (meaning, meaning_missing), (wanted, wanted_missing)) =
        futures::future::join3(lexical, semantic, requested).await;
    let weights = &state.config.ranking;
    let lists = vec![
        RankedHits {
            hits: by_score(words),
            matched: Matched::Words,
            weight: 1.0,
        },
        RankedHits {
            hits: by_score(meaning),
            matched: Matched::Meaning,
            weight: weights.semantic,
        },
    ];
    let mut candidates = fuse(&request.query, lists, weights.fusion);
    candidates.extend(wanted.into_iter().map(|mut candidate| {
        candidate.source = CandidateSource::Requested;
        candidate.retrieval_score = 1.0;
        candidate
    }));
    let missing_shards = merge_missing([words_missing, meaning_missing, wanted_missing]);
    let context = RankContext {
        preference: constraints.preference,
        budget: constraints.price_max.map(|max| Budget {
            max,
            currency: constraints.currency.clone(),
        }),
        diversify: filters.category.is_none(),
        ..RankContext::new(profile, now_ms(), state.config.profile.half_life_ms)
    };
    let mut list = finish(state, candidates, missing_shards, &context, request.k);
    list.understanding = understanding;
    list
}

/// Each shard that failed any of the request's scatters, once.
fn merge_missing<const N: usize>(lists: [Vec<MissingShard>; N]) -> Vec<MissingShard> {
    let mut merged: Vec<MissingShard> = Vec::new();
    for missing in lists.into_iter().flatten() {
        if !merged.iter().any(|known| known.shard == missing.shard) {
            merged.push(missing);
        }
    }
    merged.sort_by_key(|missing| missing.shard);
    merged
}

async fn recommend(
    state: &RankerState,
    request: RecommendRequest,
    profile: &Profile,
) -> RankedList {
    let now = now_ms();
    let half_life = state.config.profile.half_life_ms;
    let top = |affinities| -> Vec<(String, f32)> {
        Profile::normalised(affinities, now, half_life)
            .into_iter()
            .take(AFFINITY_FANOUT)
            .map(|(key, weight)| (key, weight as f32))
            .collect()
    };
    let categories = top(&profile.category_affinity);
    let brands = top(&profile.brand_affinity);
    let context = RankContext::new(profile, now, half_life);

    // Best-rated items are always in the pool: they are the whole answer for a newcomer and
    // a little exploration for everyone else.
    let (mut candidates, mut missing_shards) = scatter_as(
        state,
        Retrieval::TopRated,
        &request.filters,
        CandidateSource::TopRated,
    )
    .await;
    let signals = signal_candidates(state, &request, profile, &categories).await;
    if !categories.is_empty() || !brands.is_empty() {
        let retrieval = Retrieval::Affinity { categories, brands };
        let (liked, missing) = scatter_as(
            state,
            retrieval,
            &request.filters,
            CandidateSource::Affinity,
        )
        .await;
        // Liked items first, so deduplication keeps their more telling source.
        candidates.splice(0..0, liked);
        missing_shards.extend(missing);
    }
    // What shoppers did next is the most telling source of all.
    candidates.splice(0..0, signals);
    finish(state, candidates, missing_shards, &context, request.k)
}

/// Candidates from the online signals: followers of the shopper's latest items and what is
/// popular in the categories they like. A slow or failed signals actor costs only these.
async fn signal_candidates(
    state: &RankerState,
    request: &RecommendRequest,
    profile: &Profile,
    categories: &[(String, f32)],
) -> Vec<Candidate> {
    let filters = &request.filters;
    let session_id = request.session_id.as_deref();
    let query = SignalQuery {
        session_key: session_key(&profile.user_id, session_id),
        session_items: latest_items(profile, Some(session_id), SESSION_ITEMS),
        recent_items: latest_items(profile, None, SIGNAL_ANCHORS),
        categories: categories
            .iter()
            .take(SIGNAL_ANCHORS)
            .map(|(c, _)| c.clone())
            .collect(),
        limit: SIGNAL_CANDIDATES,
    };
    let asked = ask(
        &state.signals,
        |reply| SignalsMsg::Candidates(query, reply),
        state.config.shard_timeout,
        "online signals",
    )
    .await;
    let found = match asked {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(%error, "recommending without online signals");
            return Vec::new();
        }
    };
    let mut titles: HashMap<String, String> = HashMap::new();
    found
        .into_iter()
        .filter_map(|candidate| {
            let product = state.catalog.get(&candidate.item_id).ok().flatten()?;
            if !filters.accepts(&product) {
                return None;
            }
            let source = match candidate.source {
                SignalSource::After { item_id } => CandidateSource::After {
                    title: titles
                        .entry(item_id.clone())
                        .or_insert_with(|| title_of(&state.catalog, &item_id))
                        .clone(),
                },
                SignalSource::Popular { category } => CandidateSource::Popular { category },
                SignalSource::Neighbours => CandidateSource::Neighbours,
            };
            Some(Candidate {
                product: product.into(),
                retrieval_score: candidate.score,
                source,
            })
        })
        .collect()
}

/// The shopper's latest distinct items, newest first, from one session or from all.
fn latest_items(profile: &Profile, session: Option<Option<&str>>, limit: usize) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for item in profile.recent_items.iter().rev() {
        if session.is_some_and(|wanted| item.session_id.as_deref() != wanted) {
            continue;
        }
        if !items.contains(&item.item_id) {
            items.push(item.item_id.clone());
        }
        if items.len() == limit {
            break;
        }
    }
    items
}

fn title_of(catalog: &CatalogStore, item_id: &str) -> String {
    match catalog.get(item_id) {
        Ok(Some(product)) => product.title,
        _ => item_id.to_string(),
    }
}

/// Queries every shard in parallel and keeps whatever arrives before the shard deadline.
/// Hits come back as candidates of `source`, their score the shard's retrieval score.
async fn scatter_as(
    state: &RankerState,
    retrieval: Retrieval,
    filters: &Filters,
    source: CandidateSource,
) -> (Vec<Candidate>, Vec<MissingShard>) {
    let query = IndexQuery {
        retrieval,
        filters: filters.clone(),
        limit: state.config.candidates_per_shard,
    };
    let requests = state.shards.iter().enumerate().map(|(shard, actor)| {
        let query = query.clone();
        async move {
            let answer = ask(
                actor,
                |reply| IndexShardMsg::Search(query, reply),
                state.config.shard_timeout,
                &format!("index shard {shard}"),
            )
            .await;
            (shard, answer.and_then(|hits| hits))
        }
    });
    let mut candidates = Vec::new();
    let mut missing = Vec::new();
    for (shard, answer) in futures::future::join_all(requests).await {
        match answer {
            Ok(hits) => candidates.extend(hits.into_iter().map(|hit| Candidate {
                product: hit.product,
                retrieval_score: hit.score,
                source: source.clone(),
            })),
            Err(error) => missing.push(MissingShard {
                shard,
                error: error.to_string(),
            }),
        }
    }
    (candidates, missing)
}

/// [`scatter_as`] for hits whose source the caller settles, such as search hits to fuse.
async fn scatter(
    state: &RankerState,
    retrieval: Retrieval,
    filters: &Filters,
) -> (Vec<Candidate>, Vec<MissingShard>) {
    scatter_as(state, retrieval, filters, CandidateSource::Requested).await
}

fn finish(
    state: &RankerState,
    candidates: Vec<Candidate>,
    missing_shards: Vec<MissingShard>,
    context: &RankContext,
    k: usize,
) -> RankedList {
    let items = rank(candidates, context, &state.config.ranking, k)
        .into_iter()
        .map(|scored| RankedItem {
            product: scored.product,
            score: scored.score,
            reasons: scored.reasons,
        })
        .collect();
    RankedList {
        items,
        missing_shards,
        understanding: None,
    }
}
