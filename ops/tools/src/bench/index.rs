//! `inkling bench index`: how the shard index scales — build time, memory, disk and query
//! latency at catalog sizes far beyond the real catalogs.
//!
//! Products are recombined from real titles: product `i` takes the first half of one real
//! title and the second half of another, and its embedding is the normalised sum of the two
//! titles' real embeddings (from the real encoder, for a base sample of titles). Queries are
//! real queries, embedded by the same encoder. The shards are the real [`ShardIndex`]es,
//! searched in parallel on blocking threads as the shard actors search them; messaging and
//! HTTP are left out, so the figures are the index's own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use inkling_domain::{Filters, Product, Taxonomy};
use inkling_models::encoder::{self, ModelName, Precision, TextEncoder, TextKind};
use inkling_models::fusion::{Fusion, RankedHits, by_score, fuse};
use inkling_models::{Candidate, CandidateSource, Matched};
use inkling_storage::{
    ChineseSegmentation, IndexQuery, IndexedProduct, Retrieval, ShardIndex, ShardLayout,
};

use super::SplitMix;
use super::percentile;

pub struct IndexBench {
    pub sizes: Vec<usize>,
    pub titles: PathBuf,
    pub queries: PathBuf,
    pub shards: usize,
    pub models_dir: PathBuf,
    pub base_titles: usize,
    pub query_count: usize,
}

fn read_texts(path: &PathBuf, limit: usize) -> Result<Vec<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let texts: Vec<String> = text
        .lines()
        .filter_map(|line| {
            line.split_once('\t')
                .map(|(_, body)| body.trim().to_string())
        })
        .filter(|body| !body.is_empty())
        .collect();
    if texts.is_empty() {
        bail!("{} holds no `id<TAB>text` lines", path.display());
    }
    let step = (texts.len() / limit.max(1)).max(1);
    Ok(texts.into_iter().step_by(step).take(limit).collect())
}

fn embed_all(encoder: &dyn TextEncoder, texts: &[String], kind: TextKind) -> Result<Vec<Vec<f32>>> {
    let mut vectors = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(64) {
        vectors.extend(encoder.encode(chunk, kind)?);
    }
    Ok(vectors)
}

fn unit_sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    let sum: Vec<f32> = a.iter().zip(b).map(|(x, y)| x + y).collect();
    let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    sum.into_iter().map(|v| v / norm).collect()
}

/// The first half of one title's words followed by the second half of another's.
fn recombine(a: &str, b: &str) -> String {
    let first: Vec<&str> = a.split_whitespace().collect();
    let second: Vec<&str> = b.split_whitespace().collect();
    let mut words: Vec<&str> = first[..first.len().div_ceil(2)].to_vec();
    words.extend(&second[second.len() / 2..]);
    words.join(" ")
}

fn synthetic_product(
    number: usize,
    rng: &mut SplitMix,
    titles: &[String],
    vectors: &[Vec<f32>],
) -> IndexedProduct {
    let (a, b) = (rng.below(titles.len()), rng.below(titles.len()));
    let product = Product {
        id: format!("p{number}"),
        title: recombine(&titles[a], &titles[b]),
        category_path: vec![format!("category {}", a % 200)],
        brand: None,
        price: 1.0 + rng.below(100_000) as f64 / 100.0,
        currency: "USD".into(),
        rating: Some((rng.below(50) as f32) / 10.0),
        in_stock: true,
        attributes: Default::default(),
        listed_at_ms: None,
    };
    IndexedProduct {
        product,
        vector: Some(unit_sum(&vectors[a], &vectors[b])),
    }
}

fn folder_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => folder_bytes(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

struct Row {
    products: usize,
    build_seconds: f64,
    memory_mib: f64,
    disk_mib: f64,
    latencies: [(f64, f64); 3],
    recall_at_10: f64,
    exact_p50_ms: f64,
}

pub async fn bench_index(options: IndexBench) -> Result<()> {
    let encoder = encoder::load(
        ModelName::MultilingualE5Small,
        &options.models_dir,
        encoder::default_device(),
        Precision::Auto,
    )
    .context("loading the encoder")?;
    let titles = read_texts(&options.titles, options.base_titles)?;
    let queries = read_texts(&options.queries, options.query_count)?;
    eprintln!(
        "embedding {} base titles and {} queries",
        titles.len(),
        queries.len()
    );
    let title_vectors = embed_all(encoder.as_ref(), &titles, TextKind::Passage)?;
    let query_vectors = embed_all(encoder.as_ref(), &queries, TextKind::Query)?;
    drop(encoder);

    println!(
        "\nShard index at scale: {} shards, products recombined from {} real titles, {} real queries, multilingual-e5-small vectors\n",
        options.shards,
        titles.len(),
        queries.len()
    );
    println!(
        "| products | build s | products/s | memory MiB | disk MiB | lexical p50/p99 ms | vector p50/p99 ms | hybrid p50/p99 ms | HNSW recall@10 | exact scan p50 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    // Each row prints as soon as it is measured: the largest sizes take long.
    for &size in &options.sizes {
        let row = bench_size(
            &options,
            size,
            &titles,
            &title_vectors,
            &queries,
            &query_vectors,
        )
        .await?;
        print_row(&row);
    }
    Ok(())
}

fn print_row(row: &Row) {
    let [lexical, vector, hybrid] = row.latencies;
    println!(
        "| {} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3} | {:.1} |",
        row.products,
        row.build_seconds,
        row.products as f64 / row.build_seconds,
        row.memory_mib,
        row.disk_mib,
        lexical.0,
        lexical.1,
        vector.0,
        vector.1,
        hybrid.0,
        hybrid.1,
        row.recall_at_10,
        row.exact_p50_ms
    );
}

async fn bench_size(
    options: &IndexBench,
    size: usize,
    titles: &[String],
    title_vectors: &[Vec<f32>],
    queries: &[String],
    query_vectors: &[Vec<f32>],
) -> Result<Row> {
    let folder = tempfile::tempdir()?;
    let layout = ShardLayout::new(
        ChineseSegmentation::Jieba,
        Some("multilingual-e5-small".into()),
    );
    let memory_before = super::resident_bytes();
    let started = Instant::now();
    let shards: Vec<Arc<ShardIndex>> = (0..options.shards)
        .map(|shard| {
            let dir = folder.path().join(format!("shard-{shard}"));
            ShardIndex::open(&dir, Taxonomy::default(), &layout).map(Arc::new)
        })
        .collect::<Result<_, _>>()?;
    // One loader per shard, as each shard actor indexes its own share.
    let shard_count = options.shards;
    let loaders: Vec<_> = shards
        .iter()
        .enumerate()
        .map(|(shard, index)| {
            let index = index.clone();
            let (titles, vectors) = (titles.to_vec(), title_vectors.to_vec());
            tokio::task::spawn_blocking(move || -> Result<()> {
                let mut rng = SplitMix(shard as u64 + 1);
                let mine: Vec<usize> = (shard..size).step_by(shard_count).collect();
                for chunk in mine.chunks(5_000) {
                    let batch = chunk
                        .iter()
                        .map(|&number| synthetic_product(number, &mut rng, &titles, &vectors))
                        .collect();
                    index.upsert(batch)?;
                }
                Ok(())
            })
        })
        .collect();
    for loader in loaders {
        loader.await??;
    }
    let build_seconds = started.elapsed().as_secs_f64();
    let memory_mib = super::resident_bytes().saturating_sub(memory_before) as f64 / 1048576.0;
    let disk_mib = folder_bytes(folder.path()) as f64 / 1048576.0;
    eprintln!("{size} products built in {build_seconds:.1} s");

    let mut latencies = [(0.0, 0.0); 3];
    for (slot, mode) in ["lexical", "vector", "hybrid"].into_iter().enumerate() {
        let mut times = Vec::with_capacity(queries.len());
        for (query, vector) in queries.iter().zip(query_vectors) {
            let asked = Instant::now();
            search(&shards, mode, query, vector).await?;
            times.push(asked.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        latencies[slot] = (percentile(&times, 0.5), percentile(&times, 0.99));
    }
    let (recall_at_10, exact_p50_ms) = recall_against_exact(&shards, query_vectors).await?;
    Ok(Row {
        products: size,
        build_seconds,
        memory_mib,
        disk_mib,
        latencies,
        recall_at_10,
        exact_p50_ms,
    })
}

async fn scatter(
    shards: &[Arc<ShardIndex>],
    retrieval: Retrieval,
    limit: usize,
) -> Result<Vec<Candidate>> {
    let tasks: Vec<_> = shards
        .iter()
        .map(|shard| {
            let (shard, query) = (
                shard.clone(),
                IndexQuery {
                    retrieval: retrieval.clone(),
                    filters: Filters::default(),
                    limit,
                },
            );
            tokio::task::spawn_blocking(move || shard.search(&query))
        })
        .collect();
    let mut hits = Vec::new();
    for task in tasks {
        hits.extend(task.await??.into_iter().map(|hit| Candidate {
            product: hit.product,
            retrieval_score: hit.score,
            source: CandidateSource::Requested,
        }));
    }
    Ok(by_score(hits))
}

async fn search(
    shards: &[Arc<ShardIndex>],
    mode: &str,
    query: &str,
    vector: &[f32],
) -> Result<usize> {
    let words = match mode {
        "vector" => Vec::new(),
        _ => scatter(shards, Retrieval::Text(query.to_string()), 100).await?,
    };
    let meaning = match mode {
        "lexical" => Vec::new(),
        _ => scatter(shards, Retrieval::Vector(vector.to_vec()), 100).await?,
    };
    let lists = vec![
        RankedHits {
            hits: words,
            matched: Matched::Words,
            weight: 1.0,
        },
        RankedHits {
            hits: meaning,
            matched: Matched::Meaning,
            weight: 1.0,
        },
    ];
    Ok(fuse(query, lists, Fusion::Convex).len())
}

/// HNSW recall@10 against an exact scan of every shard, and the exact scan's median time.
async fn recall_against_exact(
    shards: &[Arc<ShardIndex>],
    query_vectors: &[Vec<f32>],
) -> Result<(f64, f64)> {
    let sample = &query_vectors[..query_vectors.len().min(50)];
    let (mut found, mut total, mut times) = (0usize, 0usize, Vec::new());
    for vector in sample {
        let approximate: Vec<String> = scatter(shards, Retrieval::Vector(vector.clone()), 10)
            .await?
            .into_iter()
            .take(10)
            .map(|c| c.product.id.clone())
            .collect();
        let started = Instant::now();
        let mut exact: Vec<(f32, String)> = shards
            .iter()
            .flat_map(|shard| shard.exact_vector_search(vector, 10))
            .map(|hit| (hit.score, hit.product.id.clone()))
            .collect();
        exact.sort_by(|a, b| b.0.total_cmp(&a.0));
        let exact: Vec<String> = exact.into_iter().take(10).map(|(_, id)| id).collect();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        total += exact.len();
        found += exact.iter().filter(|id| approximate.contains(id)).count();
    }
    times.sort_by(f64::total_cmp);
    Ok((found as f64 / total.max(1) as f64, percentile(&times, 0.5)))
}
