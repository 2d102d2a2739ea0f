//! `inkling bench updates`: whether repeated updates grow the shard index without bound.
//!
//! A real [`ShardIndex`] in a temporary folder gets `--products` products with vectors, then
//! every product's price changes `--rounds` times, a write of `--batch` products at a time
//! as the catalog writer sends them. Each update gives the product a new slot and a new
//! graph point; the shard drops dead slots at once and rebuilds the HNSW graph in the
//! background once dead points pass a share of it (a quarter by default). The table follows memory, slots, graph
//! points and recall@10 (graph against an exact scan) through the rounds, once the last
//! rebuild has finished, and for a fresh shard built from the final products: the updated
//! shard's recall should stay within 0.01 of the fresh one's.
//!
//! The vectors are synthetic, so the benchmark needs no encoder and no data files:
//! deterministic pseudo-random unit vectors scattered around a thousand random cluster
//! centres, with as many dimensions as multilingual-e5-small's. Queries are drawn the same
//! way. A price update keeps a product's vector, as it would with a real encoder.

use super::SplitMix;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use inkling_domain::{Product, Taxonomy};
use inkling_storage::shard_index::ShardStats;
use inkling_storage::vector_index::RebuildPolicy;
use inkling_storage::{
    ChineseSegmentation, IndexQuery, IndexedProduct, Retrieval, ShardIndex, ShardLayout,
};
use serde::Serialize;

/// Cluster centres the synthetic vectors gather around.
const CENTRES: usize = 1_000;
/// Length of the noise added to a centre before normalising. Clusters overlap enough that a
/// fresh graph's recall@10 is about 0.98 at 10k products, close to what real
/// multilingual-e5-small embeddings give (docs/benchmarks.md), so a worse graph shows.
const NOISE: f32 = 1.5;
const RECALL_AT: usize = 10;

#[derive(Debug, Clone, clap::Args)]
pub struct UpdatesArgs {
    /// Products in the shard; every round updates the price of each.
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Update rounds.
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// A table row every this many rounds (and after the last).
    #[arg(long, default_value_t = 5)]
    pub every: usize,
    /// Query vectors for recall@10.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Products per write.
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Vector dimensions (multilingual-e5-small has 384).
    #[arg(long, default_value_t = 384)]
    pub dimension: usize,
    /// Rebuild the graph once dead points pass this share of it...
    #[arg(long, default_value_t = RebuildPolicy::default().dead_share)]
    pub dead_share: f32,
    /// ...and this many; a huge value turns rebuilds off, for a baseline.
    #[arg(long, default_value_t = RebuildPolicy::default().min_dead)]
    pub min_dead: usize,
}

/// One measurement of the shard.
#[derive(Debug, Serialize)]
struct Row {
    stage: String,
    /// Wall time of the work since the previous row.
    seconds: f64,
    /// Product updates per second over that work, where it was updates.
    updates_per_second: Option<f64>,
    /// Resident memory of the whole process.
    rss_mib: f64,
    #[serde(flatten)]
    stats: ShardStats,
    recall_at_10: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    products: usize,
    rounds: usize,
    batch: usize,
    dimension: usize,
    queries: usize,
    dead_share: f32,
    min_dead: usize,
    rss_before_mib: f64,
    rows: Vec<Row>,
    /// Final recall of the updated shard minus the fresh shard's; the target is > -0.01.
    recall_gap: f64,
}

pub fn run(args: UpdatesArgs) -> Result<()> {
    if args.products == 0 || args.every == 0 || args.queries == 0 || args.batch == 0 {
        bail!("--products, --every, --queries and --batch must be at least 1");
    }
    if args.dimension < 2 {
        bail!("--dimension must be at least 2");
    }
    if !(0.0..1.0).contains(&args.dead_share) {
        bail!("--dead-share must be at least 0 and below 1");
    }
    let space = VectorSpace::new(args.dimension);
    let vectors: Vec<Vec<f32>> = (0..args.products).map(|n| space.product(n)).collect();
    let queries: Vec<Vec<f32>> = (0..args.queries).map(|n| space.query(n)).collect();
    let rss_before_mib = super::resident_bytes() as f64 / 1048576.0;
    let mut output = Output::new(args.json);
    output.header(&args, rss_before_mib);

    let folder = tempfile::tempdir()?;
    let shard = open_shard(&folder.path().join("updated"))?;
    shard.set_rebuild_policy(RebuildPolicy {
        dead_share: args.dead_share,
        min_dead: args.min_dead,
    });
    let started = Instant::now();
    write_round(&shard, &vectors, 0, args.batch)?;
    output.push(measure("initial load", started, None, &shard, &queries));

    let (mut since, mut since_round) = (Instant::now(), 0);
    for round in 1..=args.rounds {
        write_round(&shard, &vectors, round, args.batch)?;
        if round % args.every != 0 && round != args.rounds {
            continue;
        }
        let updates = (round - since_round) * args.products;
        let stage = format!("after round {round}");
        output.push(measure(&stage, since, Some(updates), &shard, &queries));
        (since, since_round) = (Instant::now(), round);
    }

    let waited = Instant::now();
    shard.wait_for_maintenance();
    output.push(measure("rebuilds finished", waited, None, &shard, &queries));
    // The fresh shard is measured without the updated one in memory.
    drop(shard);

    let fresh = open_shard(&folder.path().join("fresh"))?;
    let built = Instant::now();
    write_round(&fresh, &vectors, args.rounds, args.batch)?;
    fresh.wait_for_maintenance();
    let stage = "fresh build of the final products";
    output.push(measure(stage, built, None, &fresh, &queries));
    output.finish(&args, rss_before_mib)
}

fn open_shard(dir: &Path) -> Result<ShardIndex> {
    let layout = ShardLayout::new(ChineseSegmentation::Jieba, Some("synthetic".into()));
    Ok(ShardIndex::open(dir, Taxonomy::default(), &layout)?)
}

/// Writes every product as of `round`, `batch` products per write.
fn write_round(shard: &ShardIndex, vectors: &[Vec<f32>], round: usize, batch: usize) -> Result<()> {
    let numbers: Vec<usize> = (0..vectors.len()).collect();
    for chunk in numbers.chunks(batch) {
        let products = chunk
            .iter()
            .map(|&number| priced_product(number, round, &vectors[number]))
            .collect();
        shard.upsert(products)?;
    }
    Ok(())
}

/// Product `number` as of update round `round`: only the price moves between rounds.
fn priced_product(number: usize, round: usize, vector: &[f32]) -> IndexedProduct {
    let base = 5.0 + (number % 1_000) as f64;
    let product = Product {
        id: format!("p{number}"),
        title: format!("synthetic product {number}"),
        category_path: vec![format!("category {}", number % 50)],
        brand: None,
        price: base + round as f64 * 0.25,
        currency: "USD".into(),
        rating: Some(4.0),
        in_stock: true,
        attributes: Default::default(),
        listed_at_ms: None,
    };
    IndexedProduct {
        product,
        vector: Some(vector.to_vec()),
    }
}

fn measure(
    stage: &str,
    since: Instant,
    updates: Option<usize>,
    shard: &ShardIndex,
    queries: &[Vec<f32>],
) -> Row {
    let seconds = since.elapsed().as_secs_f64();
    Row {
        stage: stage.to_string(),
        seconds,
        updates_per_second: updates.map(|count| count as f64 / seconds),
        rss_mib: super::resident_bytes() as f64 / 1048576.0,
        stats: shard.stats(),
        recall_at_10: recall_at_10(shard, queries),
    }
}

/// Share of the exact top 10 (a scan of every vector) that the shard's vector search finds.
fn recall_at_10(shard: &ShardIndex, queries: &[Vec<f32>]) -> f64 {
    let (mut found, mut total) = (0, 0);
    for vector in queries {
        let query = IndexQuery {
            retrieval: Retrieval::Vector(vector.clone()),
            filters: Default::default(),
            limit: RECALL_AT,
        };
        let approximate: Vec<String> = match shard.search(&query) {
            Ok(hits) => hits.into_iter().map(|hit| hit.product.id.clone()).collect(),
            Err(_) => Vec::new(),
        };
        let exact = shard.exact_vector_search(vector, RECALL_AT);
        total += exact.len();
        found += exact
            .iter()
            .filter(|hit| approximate.contains(&hit.product.id))
            .count();
    }
    found as f64 / total.max(1) as f64
}

/// Prints rows as a Markdown table as they come, or the whole report as one JSON object at
/// the end.
struct Output {
    json: bool,
    rows: Vec<Row>,
}

impl Output {
    fn new(json: bool) -> Self {
        Self {
            json,
            rows: Vec::new(),
        }
    }

    fn header(&self, args: &UpdatesArgs, rss_before_mib: f64) {
        if self.json {
            return;
        }
        println!(
            "\nShard index under repeated updates: {} products, every price updated {} times in writes of {}; synthetic {}-dimension vectors around {CENTRES} cluster centres (no encoder); recall@{RECALL_AT} of the HNSW search against an exact scan over {} queries; the graph is rebuilt in the background once dead points pass {:.0}% of it and {}. RSS is the whole process's ({rss_before_mib:.0} MiB before the shard opened; the allocator keeps freed pages, so it shows the peak).\n",
            args.products,
            args.rounds,
            args.batch,
            args.dimension,
            args.queries,
            args.dead_share * 100.0,
            args.min_dead
        );
        println!(
            "| stage | s | updates/s | RSS MiB | slot high-water | live | table slots | graph points | dead points | rebuilds | recall@10 |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    }

    fn push(&mut self, row: Row) {
        if !self.json {
            print_row(&row);
        }
        self.rows.push(row);
    }

    /// Prints how the updated shard's recall compares with the fresh one's (the last two
    /// rows), or the whole report.
    fn finish(self, args: &UpdatesArgs, rss_before_mib: f64) -> Result<()> {
        let [.., updated, fresh] = self.rows.as_slice() else {
            bail!("the benchmark measured fewer than two rows");
        };
        let recall_gap = updated.recall_at_10 - fresh.recall_at_10;
        if self.json {
            let report = Report {
                products: args.products,
                rounds: args.rounds,
                batch: args.batch,
                dimension: args.dimension,
                queries: args.queries,
                dead_share: args.dead_share,
                min_dead: args.min_dead,
                rss_before_mib,
                rows: self.rows,
                recall_gap,
            };
            println!("{}", serde_json::to_string(&report)?);
            return Ok(());
        }
        let verdict = if recall_gap > -0.01 {
            "within"
        } else {
            "NOT within"
        };
        println!(
            "\nUpdated minus fresh recall@{RECALL_AT}: {recall_gap:+.3} ({verdict} the 0.01 target)."
        );
        Ok(())
    }
}

fn print_row(row: &Row) {
    let stats = &row.stats;
    let rate = row
        .updates_per_second
        .map_or_else(|| "—".to_string(), |rate| format!("{rate:.0}"));
    let running = if stats.rebuilding {
        " (+1 running)"
    } else {
        ""
    };
    println!(
        "| {} | {:.1} | {rate} | {:.0} | {} | {} | {} | {} | {} | {}{running} | {:.3} |",
        row.stage,
        row.seconds,
        row.rss_mib,
        stats.slot_high_water,
        stats.live_products,
        stats.product_slots,
        stats.graph_points,
        stats.dead_graph_points,
        stats.rebuilds_completed,
        row.recall_at_10,
    );
}

/// Deterministic clustered unit vectors: every run builds the same catalog and queries.
struct VectorSpace {
    centres: Vec<Vec<f32>>,
}

impl VectorSpace {
    fn new(dimension: usize) -> Self {
        let mut rng = SplitMix(0x5EED);
        let centres = (0..CENTRES)
            .map(|_| unit((0..dimension).map(|_| rng.gaussian()).collect()))
            .collect();
        Self { centres }
    }

    fn product(&self, number: usize) -> Vec<f32> {
        self.around(SplitMix(number as u64))
    }

    fn query(&self, number: usize) -> Vec<f32> {
        self.around(SplitMix(!(number as u64)))
    }

    /// A random centre plus noise of length about [`NOISE`], normalised.
    fn around(&self, mut rng: SplitMix) -> Vec<f32> {
        let centre = &self.centres[rng.below(self.centres.len())];
        let scale = NOISE / (centre.len() as f32).sqrt();
        unit(
            centre
                .iter()
                .map(|value| value + scale * rng.gaussian())
                .collect(),
        )
    }
}

fn unit(values: Vec<f32>) -> Vec<f32> {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    values.into_iter().map(|v| v / norm).collect()
}
