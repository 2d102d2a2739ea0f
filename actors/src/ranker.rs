//! The ranker actor: scatters a request to every index shard (and, for recommendations, to
//! the online signals) in parallel, gathers what arrives before the deadline, and merges
//! the candidates: search hits with the shopper's profile, recommendation candidates with
//! the learned recommendation model.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use inkling_domain::{EventKind, Filters, Product, Profile, now_ms};
use inkling_models::fusion::{RankedHits, by_score, fuse};
use inkling_models::intent::{Slots, Understanding};
use inkling_models::recommend::{
    self as recommendations, Evidence, Feature, Proposal, RankerModel, RecommendContext,
};
use inkling_models::search_ranker::{
    SEARCH_FEATURES, SearchFeatureVector, SearchRanker, fuse_learned,
};
use inkling_models::slot_evidence::{FILTER_CONFIDENCE, settle};
use inkling_models::{Budget, Candidate, CandidateSource, Matched, RankContext, rank};
use inkling_storage::{IndexHit, IndexQuery, Retrieval};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorMessage;
use tracing::Instrument;

use crate::config::ActorConfig;
use crate::index_shard::IndexShardMsg;
use crate::placement::ShardPlacement;
use crate::protocol::{
    MissingShard, RankedItem, RankedList, RecommendRequest, SearchRequest, effective_filters,
};
use crate::signals::{
    SignalAnswer, SignalCandidate, SignalQuery, SignalSource, SignalsMsg, TRANSITION_ANCHORS,
    session_key,
};
use crate::slot::ActorSlot;
use crate::{ActorError, ask};

/// How many liked categories and brands steer recommendation retrieval.
const AFFINITY_FANOUT: usize = 5;
/// How many categories the shopper asked for or likes are asked what is trending in them.
const TRENDING_CATEGORIES: usize = 3;
/// Below this many known followers, the newest item counts as cold and content similarity
/// proposes candidates for it.
const COLD_ITEM_FOLLOWERS: usize = 5;
/// Candidates the online signals propose per anchor.
const SIGNAL_CANDIDATES: usize = 100;
/// Items of the current session that session-kNN compares with past sessions.
const SESSION_ITEMS: usize = 20;

#[derive(RactorMessage)]
pub enum RankerMsg {
    /// Ranks search hits for the query, personalised by the profile and shaped by what the
    /// query was understood to ask.
    Search(
        SearchRequest,
        Box<Profile>,
        Option<Box<Understanding>>,
        Option<Vec<f32>>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
    /// Ranks recommendations from the profile and what the shopper stated in this
    /// session's conversation (category, price), which they must respect.
    Recommend(
        RecommendRequest,
        Box<Profile>,
        Option<Box<Slots>>,
        RpcReplyPort<Result<RankedList, ActorError>>,
    ),
}

#[derive(Clone)]
pub struct Ranker;

pub struct RankerState {
    pub shards: Arc<dyn ShardPlacement>,
    pub signals: ActorSlot<SignalsMsg>,
    /// The learned model that scores recommendations.
    pub recommender: Arc<RankerModel>,
    /// The learned search ranker, if one was loaded.
    pub search_ranker: Option<Arc<SearchRanker>>,
    pub config: ActorConfig,
}

impl Actor for Ranker {
    type Msg = RankerMsg;
    type State = Arc<RankerState>;
    type Arguments = Arc<RankerState>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: Arc<RankerState>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        crate::fail_point!("ranker-handle");
        let state = state.clone();
        // Each request runs as its own task so a slow shard never stalls the mailbox.
        match message {
            RankerMsg::Search(request, profile, understanding, vector, reply) => {
                let search = async move {
                    let understanding = understanding.map(|u| *u);
                    let answer = search(&state, request, &profile, understanding, vector).await;
                    let _ = reply.send(Ok(answer));
                };
                tokio::spawn(search.instrument(inkling_ops::trace::stage("ranker.search")));
            }
            RankerMsg::Recommend(request, profile, stated, reply) => {
                let recommend = async move {
                    let stated = stated.map(|slots| *slots).unwrap_or_default();
                    let _ = reply.send(Ok(recommend(&state, request, &profile, stated).await));
                };
                tokio::spawn(recommend.instrument(inkling_ops::trace::stage("ranker.recommend")));
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
    // The category and brand read from words are guesses: retrieval runs without them and
    // `settle` weighs them against what it found. Explicit filters and prices always hold.
    let stated = Slots {
        category: None,
        brand: None,
        ..constraints.clone()
    };
    let filters = effective_filters(&request.filters, &stated);
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
    // A category or brand asked for surely is a candidate source of its own: the query
    // text ("有没有8000元以内的？") often says nothing else a text index could match. Its
    // products carry no retrieval score: they fill in, they do not outrank matches.
    let requested = async {
        let sure = |confidence: Option<f64>| confidence.unwrap_or(1.0) >= FILTER_CONFIDENCE;
        let wanted = Slots {
            category: constraints
                .category
                .clone()
                .filter(|_| sure(constraints.category_confidence)),
            brand: constraints
                .brand
                .clone()
                .filter(|_| sure(constraints.brand_confidence)),
            ..stated.clone()
        };
        if wanted.category.is_none() && wanted.brand.is_none() {
            return (Vec::new(), Vec::new());
        }
        let wanted_filters = effective_filters(&request.filters, &wanted);
        scatter(state, Retrieval::TopRated, &wanted_filters).await
    };
    let ((words, words_missing), (meaning, meaning_missing), (wanted, wanted_missing)) =
        futures::future::join3(lexical, semantic, requested).await;
    let weights = &state.config.ranking;
    // Explaining without a learned ranker logs the features under weights that rank as
    // convex fusion does, so the answer is the one the shopper would get.
    let learned = state.search_ranker.clone().or_else(|| {
        request
            .explain
            .then(|| Arc::new(SearchRanker::convex(weights.semantic)))
    });
    let (mut candidates, features) = match learned {
        Some(ranker) => fuse_learned(&request.query, by_score(words), by_score(meaning), &ranker),
        None => {
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
            (fuse(&request.query, lists, weights.fusion), HashMap::new())
        }
    };
    candidates.extend(wanted.into_iter().map(|mut candidate| {
        candidate.source = CandidateSource::Requested;
        candidate.retrieval_score = 0.0;
        candidate
    }));
    let settled = settle(candidates, &constraints, &request.filters);
    let missing_shards = merge_missing([words_missing, meaning_missing, wanted_missing]);
    let context = RankContext {
        preference: constraints.preference,
        budget: constraints.price_max.map(|max| Budget {
            max,
            currency: constraints.currency.clone(),
        }),
        // A search names what it wants; diversity is for recommendations and browsing.
        diversify: false,
        evidence: settled.evidence,
        ..RankContext::new(profile, now_ms(), state.config.profile.half_life_ms)
    };
    let mut list = finish(
        state,
        settled.candidates,
        missing_shards,
        &context,
        request.k,
    );
    if request.explain {
        explain_search(&mut list, &features);
    }
    list.understanding = understanding;
    list.notices = settled.notices;
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
    stated: Slots,
) -> RankedList {
    let now = now_ms();
    let half_life = state.config.profile.half_life_ms;
    let filters = effective_filters(&request.filters, &stated);
    let shopper = Shopper::describe(profile, request.session_id.as_deref(), now, half_life);
    // A shopper with no history yet gets the cold-start policy; the learned model
    // describes shoppers by what they did.
    let cold_start;
    let model: &RankerModel = if shopper.anchors.is_empty() {
        cold_start = RankerModel::cold_start();
        &cold_start
    } else {
        &state.recommender
    };
    let not_again = match request.buy_again {
        true => Vec::new(),
        false => in_cart_or_viewed(profile, request.session_id.as_deref()),
    };
    let mut gathered = gather(state, &shopper, &stated, &filters, model).await;
    let missing_shards = merge_missing([
        std::mem::take(&mut gathered.top_rated.1),
        std::mem::take(&mut gathered.liked.1),
    ]);
    let proposals = proposals(state, gathered, &shopper.anchors, &filters).await;
    let context = RecommendContext {
        profile,
        session_items: &shopper.session_items,
        now_ms: now,
        half_life_ms: half_life,
        budget: stated.price_max.map(|max| Budget {
            max,
            currency: stated.currency.clone(),
        }),
        diversify: filters.category.is_none(),
        max_category_share: state.config.ranking.max_category_share,
        explain: request.explain,
        not_again: &not_again,
    };
    let items = recommendations::recommend(proposals, &context, model, request.k)
        .into_iter()
        .map(|item| RankedItem {
            product: item.product,
            score: item.score,
            reasons: item.reasons,
            features: item.features.map(|vector| {
                Feature::ALL
                    .iter()
                    .map(|feature| (feature.name().to_string(), vector[*feature as usize]))
                    .collect()
            }),
        })
        .collect();
    RankedList {
        items,
        missing_shards,
        shard_count: state.shards.shard_count(),
        understanding: None,
        notices: Vec::new(),
    }
}

/// What recommendation retrieval asks about the shopper.
struct Shopper {
    session_key: String,
    /// The current session's items, newest first.
    session_items: Vec<String>,
    /// The shopper's latest items across sessions, newest first.
    anchors: Vec<String>,
    categories: Vec<(String, f32)>,
    brands: Vec<(String, f32)>,
    segment: Option<u32>,
}

impl Shopper {
    fn describe(profile: &Profile, session_id: Option<&str>, now: u64, half_life: u64) -> Self {
        let liked = |affinities| -> Vec<(String, f32)> {
            Profile::normalised(affinities, now, half_life)
                .into_iter()
                .take(AFFINITY_FANOUT)
                .map(|(key, weight)| (key, weight as f32))
                .collect()
        };
        Self {
            session_key: session_key(&profile.user_id, session_id),
            session_items: latest_items(profile, Some(session_id), SESSION_ITEMS),
            anchors: latest_items(profile, None, TRANSITION_ANCHORS),
            categories: liked(&profile.category_affinity),
            brands: liked(&profile.brand_affinity),
            segment: profile.segment,
        }
    }
}

type Hits = (Vec<Candidate>, Vec<MissingShard>);

/// What every candidate source answered.
struct Gathered {
    signals: SignalAnswer,
    top_rated: Hits,
    liked: Hits,
    /// Products like the shopper's newest item, with that item's id.
    similar: Option<(String, Vec<Candidate>)>,
}

/// Asks every source the model gives weight to, in parallel; a source whose features weigh
/// nothing is not asked at all.
async fn gather(
    state: &RankerState,
    shopper: &Shopper,
    stated: &Slots,
    filters: &Filters,
    model: &RankerModel,
) -> Gathered {
    let wanted = |feature: Feature| model.weight(feature) != 0.0;
    // A category asked for in words leads what is trending; liked ones follow.
    let mut trending_in: Vec<String> = Vec::new();
    if wanted(Feature::PopularInCategory) {
        let liked_names = shopper.categories.iter().map(|(category, _)| category);
        for category in stated.category.iter().chain(liked_names) {
            if trending_in.len() < TRENDING_CATEGORIES && !trending_in.contains(category) {
                trending_in.push(category.clone());
            }
        }
    }
    let query = SignalQuery {
        session_key: shopper.session_key.clone(),
        session_items: shopper.session_items.clone(),
        recent_items: shopper.anchors.clone(),
        categories: trending_in,
        segment: shopper
            .segment
            .filter(|_| wanted(Feature::PopularInSegment)),
        limit: SIGNAL_CANDIDATES,
    };
    let top_rated = async {
        if !wanted(Feature::TopRated) {
            return Hits::default();
        }
        scatter(state, Retrieval::TopRated, filters).await
    };
    let liked = async {
        let nothing_liked = shopper.categories.is_empty() && shopper.brands.is_empty();
        if nothing_liked || !wanted(Feature::Liked) {
            return Hits::default();
        }
        let retrieval = Retrieval::Affinity {
            categories: shopper.categories.clone(),
            brands: shopper.brands.clone(),
        };
        scatter(state, retrieval, filters).await
    };
    let (signals, top_rated, liked) =
        futures::future::join3(signal_candidates(state, query), top_rated, liked).await;
    let similar = match wanted(Feature::Similar) {
        true => similar_to_newest(state, &shopper.anchors, &signals, filters).await,
        false => None,
    };
    Gathered {
        signals,
        top_rated,
        liked,
        similar,
    }
}

/// Folds what the sources said into one proposal per product that passes the filters.
async fn proposals(
    state: &RankerState,
    gathered: Gathered,
    anchors: &[String],
    filters: &Filters,
) -> Vec<Proposal> {
    let mut products: HashMap<String, Arc<Product>> = HashMap::new();
    let mut board: HashMap<String, Evidence> = HashMap::new();
    for hit in gathered.top_rated.0 {
        board.entry(hit.product.id.clone()).or_default().top_rated = hit.retrieval_score;
        products.insert(hit.product.id.clone(), hit.product);
    }
    for hit in gathered.liked.0 {
        board.entry(hit.product.id.clone()).or_default().liked = hit.retrieval_score;
        products.insert(hit.product.id.clone(), hit.product);
    }
    let signals = gathered.signals;
    // Signals name items by id; the anchors' titles explain "viewed after ...".
    let unknown: Vec<String> = signals
        .candidates
        .iter()
        .map(|candidate| candidate.item_id.clone())
        .chain(anchors.iter().cloned())
        .filter(|id| !products.contains_key(id))
        .collect();
    for product in lookup(state, unknown).await {
        products.insert(product.id.clone(), product);
    }
    if let Some((anchor, hits)) = gathered.similar {
        let anchor_title = products.get(&anchor).map(|product| product.title.clone());
        for hit in hits.into_iter().filter(|hit| hit.product.id != anchor) {
            let evidence = board.entry(hit.product.id.clone()).or_default();
            evidence.similar = hit.retrieval_score;
            evidence.similar_title = anchor_title.clone();
            products.insert(hit.product.id.clone(), hit.product);
        }
    }
    let title = |id: &str| products.get(id).map(|product| product.title.clone());
    for candidate in signals.candidates {
        let evidence = board.entry(candidate.item_id.clone()).or_default();
        record_signal(evidence, candidate, &title);
    }
    for (item_id, interest) in signals.interest {
        board.entry(item_id).or_default().interest = interest;
    }
    board
        .into_iter()
        .filter_map(|(id, evidence)| {
            let product = products.get(&id)?.clone();
            filters
                .accepts(&product)
                .then_some(Proposal { product, evidence })
        })
        .collect()
}

/// What a signal says about its item, as evidence for the ranking model.
fn record_signal(
    evidence: &mut Evidence,
    candidate: SignalCandidate,
    title: &impl Fn(&str) -> Option<String>,
) {
    let score = candidate.score;
    match candidate.source {
        SignalSource::Neighbours {
            rank,
            near_score,
            next_score,
        } => {
            evidence.neighbours = score;
            evidence.neighbours_near = near_score;
            evidence.neighbours_next = next_score;
            evidence.neighbours_rank = Some(rank);
        }
        SignalSource::After {
            item_id,
            steps_back,
            count,
        } => {
            if steps_back == 0 {
                evidence.after_newest_count = count;
            }
            if score > evidence.after.iter().copied().fold(0.0, f32::max) {
                evidence.after_title = title(&item_id);
            }
            let slot = &mut evidence.after[steps_back.min(evidence.after.len() - 1)];
            *slot = slot.max(score);
        }
        SignalSource::Together { item_id } => {
            if score > evidence.together {
                evidence.together = score;
                evidence.together_title = title(&item_id);
            }
        }
        SignalSource::Popular { category: None } => evidence.popular = score,
        SignalSource::Popular {
            category: Some(category),
        } => {
            if score > evidence.popular_in_category {
                evidence.popular_in_category = score;
                evidence.popular_category = Some(category);
            }
        }
        SignalSource::PopularInSegment => evidence.popular_in_segment = score,
    }
}

/// Candidates from the online signals. A slow or failed signals actor costs only these.
async fn signal_candidates(state: &RankerState, query: SignalQuery) -> SignalAnswer {
    let asked = state
        .signals
        .ask(
            |reply| SignalsMsg::Candidates(query, reply),
            state.config.shard_timeout,
        )
        .await;
    asked.unwrap_or_else(|error| {
        tracing::warn!(%error, "recommending without online signals");
        SignalAnswer::default()
    })
}

/// Products like the shopper's newest item by their embeddings, when that item is too new
/// for the shoppers' behaviour to say what goes with it.
async fn similar_to_newest(
    state: &RankerState,
    anchors: &[String],
    signals: &SignalAnswer,
    filters: &Filters,
) -> Option<(String, Vec<Candidate>)> {
    let newest = anchors.first()?;
    let known_followers = signals
        .candidates
        .iter()
        .filter(|c| matches!(c.source, SignalSource::After { steps_back: 0, .. }))
        .count();
    if known_followers >= COLD_ITEM_FOLLOWERS {
        return None;
    }
    let owner = any_replica(state, state.shards.shard_of(newest));
    let vector = ask(
        &owner.ok()?,
        |reply| IndexShardMsg::VectorOf(newest.clone(), reply),
        state.config.shard_timeout,
        "index shard",
    )
    .await
    .ok()
    .flatten()?;
    let (hits, _) = scatter(state, Retrieval::Vector(vector), filters).await;
    Some((newest.clone(), hits))
}

/// The products behind `ids`, asked of the shards that own them, in parallel.
async fn lookup(state: &RankerState, ids: Vec<String>) -> Vec<Arc<Product>> {
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); state.shards.shard_count()];
    let unique: std::collections::HashSet<String> = ids.into_iter().collect();
    for id in unique {
        by_shard[state.shards.shard_of(&id)].push(id);
    }
    let requests = by_shard
        .into_iter()
        .enumerate()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(shard, ids)| async move {
            let found = match any_replica(state, shard) {
                Ok(actor) => {
                    ask(
                        &actor,
                        |reply| IndexShardMsg::Lookup(ids, reply),
                        state.config.shard_timeout,
                        "index shard",
                    )
                    .await
                }
                Err(error) => Err(error),
            };
            found.unwrap_or_else(|error| {
                tracing::warn!(%error, "recommending without one shard's products");
                Vec::new()
            })
        });
    futures::future::join_all(requests)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// What the shopper has put in the cart (and not bought since), and the item being viewed:
/// the newest view of this session, or of any session without one.
fn in_cart_or_viewed(profile: &Profile, session: Option<&str>) -> Vec<String> {
    let mut items: Vec<String> = profile
        .recent_items
        .iter()
        .filter(|item| item.kind == EventKind::AddToCart)
        .map(|item| item.item_id.clone())
        .collect();
    let viewing = profile
        .recent_items
        .iter()
        .rev()
        .filter(|item| session.is_none() || item.session_id.as_deref() == session)
        .find(|item| item.kind == EventKind::View);
    items.extend(viewing.map(|item| item.item_id.clone()));
    items
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

/// Queries every shard in parallel and keeps whatever arrives before the shard deadline.
/// Hits come back as candidates whose source the caller settles, their score the shard's
/// retrieval score.
async fn scatter(
    state: &RankerState,
    retrieval: Retrieval,
    filters: &Filters,
) -> (Vec<Candidate>, Vec<MissingShard>) {
    let query = IndexQuery {
        retrieval,
        filters: filters.clone(),
        limit: state.config.candidates_per_shard,
    };
    let requests = (0..state.shards.shard_count()).map(|shard| {
        let query = query.clone();
        async move { (shard, search_shard(state, shard, query).await) }
    });
    let mut candidates = Vec::new();
    let mut missing = Vec::new();
    for (shard, answer) in futures::future::join_all(requests).await {
        match answer {
            Ok(hits) => candidates.extend(hits.into_iter().map(|hit| Candidate {
                product: hit.product,
                retrieval_score: hit.score,
                source: CandidateSource::Requested,
            })),
            Err(error) => missing.push(MissingShard {
                shard,
                error: error.to_string(),
            }),
        }
    }
    (candidates, missing)
}

/// Searches `shard` on its replicas, this node's copy first. When that copy fails, or has
/// not answered within half the shard deadline, the next replica (on another node) is
/// asked as well and the first good answer wins, all within one shard deadline: a slow or
/// lost copy costs a hedged read, not the shard's share of the results.
async fn search_shard(
    state: &RankerState,
    shard: usize,
    query: IndexQuery,
) -> Result<Vec<IndexHit>, ActorError> {
    let deadline = state.config.shard_timeout;
    let name = format!("index shard {shard}");
    let ask_replica = |replica: ActorRef<IndexShardMsg>, budget: Duration| {
        let (query, name) = (query.clone(), name.clone());
        async move {
            let started = std::time::Instant::now();
            let trace = inkling_ops::trace::TraceContext::current();
            let message = |reply| IndexShardMsg::Search(query, trace, reply);
            let asked = ask(&replica, message, budget, &name).await;
            if !replica.get_id().is_local() {
                let answered = matches!(asked, Ok(Ok(_)));
                inkling_ops::metrics::observe_remote_call("index_shard", started, answered);
            }
            asked?
        }
    };
    let mut replicas = state.shards.replicas(shard).into_iter();
    let Some(first) = replicas.next() else {
        return Err(no_replica(shard));
    };
    let first_try = ask_replica(first, deadline).boxed();
    let Some(second) = replicas.next() else {
        return first_try.await;
    };
    let hedge_after = deadline / 2;
    let second_try = async move {
        tokio::time::sleep(hedge_after).await;
        ask_replica(second, deadline - hedge_after).await
    }
    .boxed();
    let (hits, _) = futures::future::select_ok([first_try, second_try]).await?;
    Ok(hits)
}

/// This node's copy of `shard` when it runs, else a replica on another node.
fn any_replica(state: &RankerState, shard: usize) -> Result<ActorRef<IndexShardMsg>, ActorError> {
    let replica = state.shards.replicas(shard).into_iter().next();
    replica.ok_or_else(|| no_replica(shard))
}

fn no_replica(shard: usize) -> ActorError {
    ActorError::Unavailable(format!("no replica of index shard {shard} is running"))
}

/// Attaches each item's search features, by name.
fn explain_search(list: &mut RankedList, features: &HashMap<String, SearchFeatureVector>) {
    for item in &mut list.items {
        item.features = features.get(&item.product.id).map(|vector| {
            SEARCH_FEATURES
                .iter()
                .zip(vector)
                .map(|(name, value)| (name.to_string(), *value))
                .collect()
        });
    }
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
            features: None,
        })
        .collect();
    RankedList {
        items,
        missing_shards,
        shard_count: state.shards.shard_count(),
        understanding: None,
        notices: Vec::new(),
    }
}
