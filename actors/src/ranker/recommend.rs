//! The recommendation pipeline: ask the online signals and the shards, in parallel, for
//! candidates (what the shopper's sessions lead to, what they like, the best-rated for
//! newcomers, what resembles a cold newest item), turn item ids into products with the
//! owning shards, and score everything with the learned recommendation model. On a product
//! page the page's product leads: its alternatives ("similar") or what shoppers take with it
//! ("goes with").

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use inkling_domain::{EventKind, Filters, Product, Profile, now_ms};
use inkling_models::intent::Slots;
use inkling_models::recommend::{
    self as recommendations, Evidence, Feature, Proposal, RankerModel, RecommendContext,
};
use inkling_models::{Budget, Candidate};
use inkling_storage::Retrieval;

use super::context::{Hits, RankingContext, merge_missing};
use crate::protocol::{
    ItemContext, RankedItem, RankedList, RecommendRequest, Relation, effective_filters,
};
use crate::signals::{
    SignalAnswer, SignalCandidate, SignalQuery, SignalSource, TRANSITION_ANCHORS, session_key,
};

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

/// Ranks recommendations from the profile and what the shopper stated in this session's
/// conversation (category, price), which they must respect.
pub async fn recommend(
    context: &RankingContext,
    request: RecommendRequest,
    profile: &Profile,
    stated: Slots,
) -> RankedList {
    let now = now_ms();
    let half_life = context.config.profile.half_life_ms;
    let mut filters = effective_filters(&request.filters, &stated);
    let mut shopper = Shopper::describe(profile, request.session_id.as_deref(), now, half_life);
    let page = match &request.item {
        Some(item) => match ProductPage::open(context, item).await {
            Some(page) => Some(page),
            None => return not_in_the_index(context, &item.item_id),
        },
        None => None,
    };
    if let Some(page) = &page {
        page.steer(&mut shopper, &mut filters);
    }
    // A shopper with no history yet gets the cold-start policy; the learned model
    // describes shoppers by what they did.
    let cold_start;
    let model: &RankerModel = if shopper.anchors.is_empty() {
        cold_start = RankerModel::cold_start();
        &cold_start
    } else {
        &context.recommender
    };
    let mut not_again = match request.buy_again {
        true => Vec::new(),
        false => in_cart_or_viewed(profile, request.session_id.as_deref()),
    };
    not_again.extend(page.iter().map(|page| page.product.id.clone()));
    let sources = Sources {
        stated: &stated,
        filters: &filters,
        model,
        similar: match page.as_ref().map(|page| page.relation) {
            None => AskSimilar::WhenCold,
            Some(Relation::Similar) => AskSimilar::Always,
            Some(Relation::GoesWith) => AskSimilar::Never,
        },
    };
    let mut gathered = gather(context, &shopper, &sources).await;
    let missing_shards = merge_missing([
        std::mem::take(&mut gathered.top_rated.1),
        std::mem::take(&mut gathered.liked.1),
    ]);
    let mut proposals = proposals(context, gathered, &shopper.anchors, &filters).await;
    if let Some(page) = &page {
        proposals.retain(|proposal| page.keeps(proposal));
        for proposal in &mut proposals {
            proposal.evidence.similar_to_page = proposal.evidence.similar_title.is_some();
        }
    }
    let recommend_context = RecommendContext {
        profile,
        session_items: &shopper.session_items,
        now_ms: now,
        half_life_ms: half_life,
        budget: stated.price_max.map(|max| Budget {
            max,
            currency: stated.currency.clone(),
        }),
        diversify: filters.category.is_empty(),
        max_category_share: context.config.ranking.max_category_share,
        explain: request.explain,
        not_again: &not_again,
    };
    let items: Vec<RankedItem> =
        recommendations::recommend(proposals, &recommend_context, model, request.k)
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
    let notices = match &page {
        Some(page) if items.is_empty() => page.nothing_known(),
        _ => Vec::new(),
    };
    RankedList {
        items,
        missing_shards,
        shard_count: context.shard_count(),
        notices,
        ..RankedList::default()
    }
}

/// The product page a recommendation is for.
struct ProductPage {
    product: Arc<Product>,
    relation: Relation,
}

impl ProductPage {
    /// The page's product, from the shard that owns it; none when no copy of it answers.
    async fn open(context: &RankingContext, item: &ItemContext) -> Option<Self> {
        let product = lookup(context, vec![item.item_id.clone()]).await.pop()?;
        Some(Self {
            product,
            relation: item.relation,
        })
    }

    /// The page's product leads the shopper's items, so what followed it, what went with it
    /// and what resembles it are asked first. Alternatives stay in its narrowest category
    /// unless the request names another, and its category and brand lead what the shopper
    /// likes.
    fn steer(&self, shopper: &mut Shopper, filters: &mut Filters) {
        let id = &self.product.id;
        for items in [&mut shopper.anchors, &mut shopper.session_items] {
            items.retain(|item| item != id);
            items.insert(0, id.clone());
        }
        shopper.anchors.truncate(TRANSITION_ANCHORS);
        if self.relation != Relation::Similar {
            return;
        }
        let leaf = self.product.category_path.last();
        if filters.category.is_empty() {
            filters.category = leaf.cloned().into_iter().collect();
        }
        // The product's kind and brand are what the page's shopper likes most right now.
        let strongest = |liked: &mut Vec<(String, f32)>, value: Option<&String>| {
            if let Some(value) = value {
                liked.retain(|(name, _)| name != value);
                liked.insert(0, (value.clone(), 1.0));
            }
        };
        strongest(&mut shopper.categories, leaf);
        strongest(&mut shopper.brands, self.product.brand.as_ref());
    }

    /// Whether a proposal may be shown on the page: never the page's own product. "Goes
    /// with" shows only another kind of product (another narrowest category) that
    /// shoppers' behaviour ties to it: resemblance, popularity or a rating say nothing of
    /// what goes with a product.
    fn keeps(&self, proposal: &Proposal) -> bool {
        let product = &proposal.product;
        if product.id == self.product.id {
            return false;
        }
        if self.relation == Relation::Similar {
            return true;
        }
        let evidence = &proposal.evidence;
        let behaviour = evidence.together > 0.0
            || evidence.after.iter().any(|share| *share > 0.0)
            || evidence.neighbours > 0.0;
        behaviour && product.category_path.last() != self.product.category_path.last()
    }

    /// Why a page's recommendations are empty, in words for the shopper.
    fn nothing_known(&self) -> Vec<String> {
        let title = &self.product.title;
        match self.relation {
            Relation::Similar => vec![format!("nothing else like {title} in the catalog")],
            Relation::GoesWith => vec![format!(
                "no shopper has yet carted, bought or viewed other products with {title}"
            )],
        }
    }
}

/// The answer for a product page whose product no shard holds.
fn not_in_the_index(context: &RankingContext, item_id: &str) -> RankedList {
    RankedList {
        shard_count: context.shard_count(),
        notices: vec![format!("no product {item_id:?} in the index")],
        ..RankedList::default()
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

/// What every candidate source answered.
struct Gathered {
    signals: SignalAnswer,
    top_rated: Hits,
    liked: Hits,
    /// Products like the shopper's newest item, with that item's id.
    similar: Option<(String, Vec<Candidate>)>,
}

/// What the candidate sources are asked with.
struct Sources<'a> {
    stated: &'a Slots,
    filters: &'a Filters,
    model: &'a RankerModel,
    similar: AskSimilar,
}

/// When to ask for the products whose embeddings are close to the newest item.
#[derive(Clone, Copy, PartialEq)]
enum AskSimilar {
    /// When behaviour knows too little of what follows the item.
    WhenCold,
    /// Always: a product page asking for alternatives.
    Always,
    /// Never: a product page asking what goes with it, which resemblance does not say.
    Never,
}

/// Asks every source the model gives weight to, in parallel; a source whose features weigh
/// nothing is not asked at all.
async fn gather(context: &RankingContext, shopper: &Shopper, sources: &Sources<'_>) -> Gathered {
    let Sources {
        stated,
        filters,
        model,
        similar: ask_similar,
    } = *sources;
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
        context.scatter(Retrieval::TopRated, filters).await
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
        context.scatter(retrieval, filters).await
    };
    let (signals, top_rated, liked) =
        futures::future::join3(signal_candidates(context, query), top_rated, liked).await;
    let ask = match ask_similar {
        AskSimilar::WhenCold => is_cold(&signals),
        AskSimilar::Always => true,
        AskSimilar::Never => false,
    };
    let similar = match ask && wanted(Feature::Similar) {
        true => similar_to(context, shopper.anchors.first(), filters).await,
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
    context: &RankingContext,
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
    for product in lookup(context, unknown).await {
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
async fn signal_candidates(context: &RankingContext, query: SignalQuery) -> SignalAnswer {
    context
        .signals
        .candidates(query)
        .await
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "recommending without online signals");
            SignalAnswer::default()
        })
}

/// Whether the shopper's newest item is too new for behaviour to say what follows it.
fn is_cold(signals: &SignalAnswer) -> bool {
    let known_followers = signals
        .candidates
        .iter()
        .filter(|c| matches!(c.source, SignalSource::After { steps_back: 0, .. }))
        .count();
    known_followers < COLD_ITEM_FOLLOWERS
}

/// Products like `item` by their embeddings, with the item's id.
async fn similar_to(
    context: &RankingContext,
    item: Option<&String>,
    filters: &Filters,
) -> Option<(String, Vec<Candidate>)> {
    let item = item?;
    let owner = context.shards.shard_of(item);
    let vector = context
        .shards
        .vector_of(owner, item.clone())
        .await
        .ok()
        .flatten()?;
    let (hits, _) = context.scatter(Retrieval::Vector(vector), filters).await;
    Some((item.clone(), hits))
}

/// The products behind `ids`, asked of the shards that own them, in parallel.
async fn lookup(context: &RankingContext, ids: Vec<String>) -> Vec<Arc<Product>> {
    let mut by_shard: Vec<Vec<String>> = vec![Vec::new(); context.shard_count()];
    let unique: HashSet<String> = ids.into_iter().collect();
    for id in unique {
        by_shard[context.shards.shard_of(&id)].push(id);
    }
    let requests = by_shard
        .into_iter()
        .enumerate()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(shard, ids)| async move {
            let found = context.shards.lookup(shard, ids).await;
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use inkling_domain::testing::product;
    use inkling_domain::{EventKind, Product, Profile, RecentItem, now_ms};
    use inkling_models::intent::Slots;

    use super::recommend;
    use crate::ActorError;
    use crate::protocol::RecommendRequest;
    use crate::ranker::IndexShards;
    use crate::ranker::testing::{Asked, FakeShards, FakeSignals, Stored, context, ids, stored};
    use crate::signals::{SignalAnswer, SignalCandidate, SignalSource};

    struct Case {
        name: &'static str,
        /// What the shopper did in this session, oldest first.
        history: &'static [(&'static str, EventKind)],
        /// A category the shopper stated in the conversation.
        stated_category: Option<&'static str>,
        /// What the signals saw follow the shopper's newest item, best first; `None` when
        /// the signals actor fails.
        followers: Option<&'static [&'static str]>,
        /// A shard that answers nothing.
        failing_shard: Option<usize>,
        buy_again: bool,
        k: usize,
        /// The answer's products, in order.
        expect_ids: &'static [&'static str],
        expect_asked: &'static [Asked],
        /// The shard asked for the newest item's embedding, if any.
        expect_vector_asked: Option<(usize, &'static str)>,
    }

    fn rated(id: &str, category: &str, rating: f32) -> Product {
        Product {
            rating: Some(rating),
            ..product(id, category, 10.0)
        }
    }

    /// Three shards; only the kettle and the teapot have embeddings, close to each other.
    fn catalog() -> Vec<Vec<Stored>> {
        vec![
            vec![
                stored(rated("mug-a", "Mugs", 4.9), None),
                stored(rated("kettle-a", "Kettles", 3.0), Some(&[1.0, 0.0])),
            ],
            vec![
                stored(rated("mug-b", "Mugs", 4.0), None),
                stored(rated("cup-a", "Cups", 4.5), None),
            ],
            vec![
                stored(rated("teapot-a", "Teapots", 2.0), Some(&[0.9, 0.1])),
                stored(rated("cup-b", "Cups", 3.5), None),
            ],
        ]
    }

    fn profile(history: &[(&str, EventKind)]) -> Profile {
        let mut profile = Profile::new("shopper");
        for (item_id, kind) in history {
            profile.recent_items.push_back(RecentItem {
                item_id: item_id.to_string(),
                kind: *kind,
                at_ms: now_ms(),
                session_id: Some("s1".into()),
            });
        }
        profile
    }

    /// Signals that saw `followers` follow `newest`, the best first.
    fn followed(newest: &str, followers: &[&str]) -> SignalAnswer {
        let candidates = followers
            .iter()
            .enumerate()
            .map(|(rank, item_id)| SignalCandidate {
                item_id: item_id.to_string(),
                score: 1.0 / (rank + 1) as f32,
                source: SignalSource::After {
                    item_id: newest.into(),
                    steps_back: 0,
                    count: 1.0,
                },
            })
            .collect();
        SignalAnswer {
            candidates,
            interest: Default::default(),
        }
    }

    async fn check(case: Case) {
        let mut shards = FakeShards::new(catalog());
        if let Some(shard) = case.failing_shard {
            shards = shards.failing(shard, ActorError::Unavailable("shard down".into()));
        }
        let shards = Arc::new(shards);
        let newest = case.history.last().map_or("", |(id, _)| *id);
        let answer = match case.followers {
            Some(followers) => Ok(followed(newest, followers)),
            None => Err(ActorError::Timeout("online signals".into())),
        };
        let signals = Arc::new(FakeSignals::answering(answer));
        let context = context(shards.clone(), signals.clone());
        let request = RecommendRequest {
            user_id: "shopper".into(),
            session_id: Some("s1".into()),
            k: case.k,
            filters: Default::default(),
            explain: false,
            buy_again: case.buy_again,
            item: None,
        };
        let stated = Slots {
            category: case.stated_category.map(String::from),
            ..Slots::default()
        };
        let list = recommend(&context, request, &profile(case.history), stated).await;

        assert_eq!(ids(&list), case.expect_ids, "{}: products", case.name);
        assert_eq!(
            shards.asked(),
            case.expect_asked,
            "{}: retrievals",
            case.name
        );
        let vector_asks = shards.vector_asks.lock().clone();
        let expected = case
            .expect_vector_asked
            .map(|(shard, id)| (shard, id.to_string()));
        assert_eq!(
            vector_asks,
            Vec::from_iter(expected),
            "{}: embedding",
            case.name
        );
        // Every id is resolved once, by the shard that owns it.
        let mut resolved = HashSet::new();
        for (shard, ids) in shards.lookups.lock().iter() {
            for id in ids {
                assert_eq!(shards.shard_of(id), *shard, "{}: owner of {id}", case.name);
                assert!(resolved.insert(id.clone()), "{}: {id} twice", case.name);
            }
        }
        assert_eq!(
            signals.asked.lock().len(),
            1,
            "{}: signals asked",
            case.name
        );
        assert!(list.missing_shards.is_empty(), "{}: missing", case.name);
        assert_eq!(list.shard_count, 3, "{}: shard count", case.name);
    }

    #[tokio::test]
    async fn recommend_pipeline() {
        let cases = [
            Case {
                name: "a newcomer gets the best-rated",
                history: &[],
                stated_category: None,
                followers: Some(&[]),
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["mug-a", "cup-a", "mug-b", "cup-b"],
                expect_asked: &[Asked::TopRated],
                expect_vector_asked: None,
            },
            Case {
                name: "a newcomer's stated category holds",
                history: &[],
                stated_category: Some("Cups"),
                followers: Some(&[]),
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["cup-a", "cup-b"],
                expect_asked: &[Asked::TopRated],
                expect_vector_asked: None,
            },
            Case {
                name: "followers are resolved by their owning shards",
                history: &[("mug-a", EventKind::View)],
                stated_category: None,
                followers: Some(&["cup-b", "mug-b", "cup-a"]),
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["cup-b", "mug-b", "cup-a"],
                expect_asked: &[],
                expect_vector_asked: Some((0, "mug-a")),
            },
            Case {
                name: "a shard that cannot resolve costs only its products",
                history: &[("mug-a", EventKind::View)],
                stated_category: None,
                followers: Some(&["cup-b", "mug-b", "cup-a"]),
                failing_shard: Some(2),
                buy_again: false,
                k: 4,
                expect_ids: &["mug-b", "cup-a"],
                expect_asked: &[],
                expect_vector_asked: Some((0, "mug-a")),
            },
            Case {
                name: "a cold newest item gets look-alikes by its embedding",
                history: &[("kettle-a", EventKind::View)],
                stated_category: None,
                followers: None,
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["teapot-a"],
                expect_asked: &[Asked::Vector],
                expect_vector_asked: Some((0, "kettle-a")),
            },
            Case {
                name: "a newest item with enough followers gets no look-alikes",
                history: &[("kettle-a", EventKind::View)],
                stated_category: None,
                followers: Some(&["mug-b", "gone-1", "gone-2", "gone-3", "gone-4"]),
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["mug-b"],
                expect_asked: &[],
                expect_vector_asked: None,
            },
            Case {
                name: "what is in the cart is not recommended again",
                history: &[("cup-a", EventKind::AddToCart), ("mug-a", EventKind::View)],
                stated_category: None,
                followers: Some(&["cup-a", "mug-b"]),
                failing_shard: None,
                buy_again: false,
                k: 4,
                expect_ids: &["mug-b"],
                expect_asked: &[],
                expect_vector_asked: Some((0, "mug-a")),
            },
            Case {
                name: "buying again recommends the cart too",
                history: &[("cup-a", EventKind::AddToCart), ("mug-a", EventKind::View)],
                stated_category: None,
                followers: Some(&["cup-a", "mug-b"]),
                failing_shard: None,
                buy_again: true,
                k: 4,
                expect_ids: &["cup-a", "mug-b"],
                expect_asked: &[],
                expect_vector_asked: Some((0, "mug-a")),
            },
        ];
        for case in cases {
            check(case).await;
        }
    }
}
