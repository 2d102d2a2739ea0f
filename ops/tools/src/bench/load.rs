//! `inkling bench load`: an open-loop load generator.
//!
//! Requests leave at a fixed rate whatever the latency, each timed from the moment it was
//! due rather than from when it was sent, so a slow server cannot slow the generator down
//! and hide its own queueing (coordinated omission). Shoppers replay real sessions from
//! Diginetica (a view per event, then recommendations), and searches are real queries:
//! Home Depot's in English, and the Chinese queries of the demo probe set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use inkling_api::{
    AsyncClient, ClientConfig, EventBatch, EventBody, EventType, RecommendBody, SearchBody,
    SearchMode,
};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::{SplitMix, percentile};
use inkling_actors::ActorConfig;
use inkling_auth::{ApiKey, KeyRing, Scope};
use inkling_node::{CatalogSource, GatewayConfig, LocalNode};

/// Requests in flight at once; a request due while all are taken counts as failed, so an
/// overloaded server shows as errors rather than as a generator that quietly slows down.
pub(super) const MAX_IN_FLIGHT: usize = 4_096;
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args)]
pub struct LoadArgs {
    /// Base URLs of running gateways, comma separated; requests go round them. A fresh
    /// local node (demo catalog, no encoder: lexical search only) when absent.
    #[arg(long, value_delimiter = ',')]
    target: Vec<String>,
    /// Requests per second, all kinds together.
    #[arg(long, default_value_t = 200.0)]
    pub(super) rate: f64,
    /// Seconds to run (each step, with --find-max).
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Shares of each request kind, as kind=weight.
    #[arg(long, default_value = "events=60,recommend=30,search=10", value_parser = parse_mix)]
    pub(super) mix: Mix,
    /// Search mode: lexical, vector or hybrid.
    #[arg(long, default_value = "lexical")]
    search_mode: String,
    /// Diginetica sessions, one per line, item ids separated by spaces.
    #[arg(long, default_value = "../shared/data/diginetica/train_sessions.txt")]
    sessions: PathBuf,
    /// Shoppers: the first this many sessions, each replayed by one shopper, over and over
    /// once its items run out. Few shoppers make long histories, as the chaos soak's 200 do.
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    shoppers: u64,
    /// English queries as `id<TAB>text` lines.
    #[arg(long, default_value = "../shared/data/homedepot/queries.tsv")]
    queries: PathBuf,
    /// Chinese queries: those of a probe file (the demo probe set by default).
    #[arg(long, default_value = "ops/tools/probes/demo.tsv")]
    chinese_queries: PathBuf,
    /// Request n of the process (warm-up included) searches for query n of the list, so no
    /// query repeats until the list runs out and every search misses the embedding cache;
    /// otherwise queries are drawn at random and some repeat.
    #[arg(long)]
    distinct_queries: bool,
    /// Steps the rate up by half each time until a kind's p99 passes --p99-ms or more than
    /// 1% of requests fail, and reports the highest rate that held.
    #[arg(long)]
    find_max: bool,
    #[arg(long, default_value_t = 100.0)]
    p99_ms: f64,
    /// Ends with one line of JSON holding the figures.
    #[arg(long)]
    json: bool,
    /// Seconds of the same load sent first and not counted, so the generator's own start
    /// (its runtime, its connection pool) is not measured as the server's latency.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Also prints, for each second of the run, the slowest answer and how many took over
    /// 20 ms, all kinds together: whether a tail is one pause or spread over the run.
    #[arg(long)]
    by_second: bool,
    #[arg(long, default_value_t = 1)]
    pub(super) seed: u64,
    /// A storefront (or admin) key for --target nodes that have keys; from the environment,
    /// so `ps` does not show it.
    #[arg(long, env = "INKLING_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// With no --target: start the local node with a storefront key and call with it, to
    /// measure what checking keys costs.
    #[arg(long)]
    keyed: bool,
}

#[derive(Debug, Clone)]
pub struct Mix(Vec<(Kind, u32)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Events,
    Recommend,
    Search,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Events => "events",
            Kind::Recommend => "recommend",
            Kind::Search => "search",
        }
    }
}

fn parse_mix(text: &str) -> Result<Mix, String> {
    let mut shares = Vec::new();
    for part in text.split(',') {
        let (name, weight) = part
            .split_once('=')
            .ok_or(format!("`{part}` is not kind=weight"))?;
        let kind = match name.trim() {
            "events" => Kind::Events,
            "recommend" => Kind::Recommend,
            "search" => Kind::Search,
            other => return Err(format!("`{other}` is not events, recommend or search")),
        };
        let weight: u32 = weight
            .trim()
            .parse()
            .map_err(|_| format!("`{weight}` is not a whole number"))?;
        shares.push((kind, weight));
    }
    if shares.iter().all(|(_, weight)| *weight == 0) {
        return Err("the mix needs a kind with a positive weight".to_string());
    }
    Ok(Mix(shares))
}

impl Mix {
    fn pick(&self, random: u64) -> Kind {
        let total: u64 = self.0.iter().map(|(_, weight)| u64::from(*weight)).sum();
        let mut ticket = random % total;
        for (kind, weight) in &self.0 {
            if ticket < u64::from(*weight) {
                return *kind;
            }
            ticket -= u64::from(*weight);
        }
        unreachable!("the tickets cover the total")
    }
}

/// What the requests are made of.
pub(super) struct Workload {
    sessions: Vec<Vec<String>>,
    queries: Vec<String>,
    search_mode: SearchMode,
    distinct_queries: bool,
}

/// One request of the load.
enum Call {
    Events(EventBatch),
    Recommend(RecommendBody),
    Search(SearchBody),
}

impl Call {
    /// Whether `client` answered it with a 2xx.
    async fn succeeds(&self, client: &AsyncClient) -> bool {
        match self {
            Call::Events(batch) => client.events(batch).await.is_ok(),
            Call::Recommend(body) => client.recommend(body).await.is_ok(),
            Call::Search(body) => client.search(body).await.is_ok(),
        }
    }
}

impl Workload {
    pub(super) fn load(args: &LoadArgs) -> Result<Self> {
        let sessions: Vec<Vec<String>> = read(&args.sessions)?
            .lines()
            .map(|line| line.split_whitespace().map(str::to_string).collect())
            .filter(|items: &Vec<String>| !items.is_empty())
            .take(usize::try_from(args.shoppers).unwrap_or(usize::MAX))
            .collect();
        let mut queries: Vec<String> = read(&args.queries)?
            .lines()
            .filter_map(|line| line.split_once('\t').map(|(_, text)| text.to_string()))
            .collect();
        queries.extend(
            crate::eval::probe::read(&args.chinese_queries)?
                .into_iter()
                .map(|case| case.query)
                .filter(|query| query.chars().any(inkling_domain::is_han)),
        );
        if sessions.is_empty() || queries.is_empty() {
            bail!("no sessions or no queries to replay");
        }
        let search_mode = serde_json::from_value(Value::String(args.search_mode.clone()))
            .with_context(|| format!("--search-mode {}", args.search_mode))?;
        Ok(Self {
            sessions,
            queries,
            search_mode,
            distinct_queries: args.distinct_queries,
        })
    }

    /// Request number `n`, of `kind`.
    fn request(&self, kind: Kind, n: u64, random: u64) -> Call {
        let session = n as usize % self.sessions.len();
        let user = format!("load-{session}");
        let items = &self.sessions[session];
        match kind {
            Kind::Events => {
                let item = &items[(n as usize / self.sessions.len()) % items.len()];
                let events = vec![EventBody::on_item(user, EventType::View, item)];
                Call::Events(EventBatch::new(events))
            }
            Kind::Recommend => Call::Recommend(RecommendBody::new(user, 10)),
            Kind::Search => {
                let pick = if self.distinct_queries { n } else { random };
                let query = &self.queries[pick as usize % self.queries.len()];
                Call::Search(SearchBody {
                    mode: self.search_mode,
                    ..SearchBody::new(user, query.as_str(), 10)
                })
            }
        }
    }
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Latencies (ms, from the due time; sorted once the run is over) and failures of one kind.
#[derive(Default)]
struct Tally {
    latencies: Vec<f64>,
    failed: u64,
}

/// The answers due in one second of the run, all kinds together.
#[derive(Default)]
struct Second {
    answered: u32,
    over_20_ms: u32,
    slowest_ms: f64,
}

impl Second {
    fn record(&mut self, latency_ms: f64) {
        self.answered += 1;
        self.over_20_ms += u32::from(latency_ms > 20.0);
        self.slowest_ms = self.slowest_ms.max(latency_ms);
    }
}

pub(super) struct Outcome {
    rate: f64,
    seconds: f64,
    by_kind: BTreeMap<Kind, Tally>,
    by_second: BTreeMap<u64, Second>,
}

impl Outcome {
    fn holds(&self, p99_ms: f64) -> bool {
        self.by_kind.values().all(|tally| {
            let sorted = &tally.latencies;
            let total = sorted.len() as u64 + tally.failed;
            let p99 = percentile(sorted, 0.99);
            tally.failed * 100 <= total && (sorted.is_empty() || p99 <= p99_ms)
        })
    }

    /// Requests answered with a 2xx, and the others, over every kind.
    pub(super) fn counts(&self) -> (u64, u64) {
        self.by_kind.values().fold((0, 0), |(ok, failed), tally| {
            (ok + tally.latencies.len() as u64, failed + tally.failed)
        })
    }

    fn report(&self) -> Value {
        let mut kinds = serde_json::Map::new();
        for (kind, tally) in &self.by_kind {
            let sorted = &tally.latencies;
            let total = sorted.len() as u64 + tally.failed;
            kinds.insert(
                kind.name().to_string(),
                json!({
                    "requests": total,
                    "per_second": sorted.len() as f64 / self.seconds,
                    "error_rate": tally.failed as f64 / total.max(1) as f64,
                    "p50_ms": percentile(sorted, 0.50),
                    "p90_ms": percentile(sorted, 0.90),
                    "p99_ms": percentile(sorted, 0.99),
                    "p999_ms": percentile(sorted, 0.999),
                }),
            );
        }
        json!({ "rate": self.rate, "seconds": self.seconds, "kinds": kinds })
    }
}

fn print_table(report: &Value) {
    println!(
        "\nopen loop at {} requests/s for {:.0} s\n",
        report["rate"], report["seconds"]
    );
    println!("| kind | requests | answered/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let Some(kinds) = report["kinds"].as_object() else {
        return;
    };
    for (kind, figures) in kinds {
        let number = |key: &str| figures[key].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {kind} | {} | {:.0} | {:.2}% | {:.2} | {:.2} | {:.2} | {:.2} |",
            figures["requests"],
            number("per_second"),
            number("error_rate") * 100.0,
            number("p50_ms"),
            number("p90_ms"),
            number("p99_ms"),
            number("p999_ms"),
        );
    }
}

fn print_by_second(by_second: &BTreeMap<u64, Second>) {
    println!("\n| second | answered | over 20 ms | slowest ms |");
    println!("|---:|---:|---:|---:|");
    for (second, figures) in by_second {
        println!(
            "| {second} | {} | {} | {:.1} |",
            figures.answered, figures.over_20_ms, figures.slowest_ms
        );
    }
}

/// Where a run's requests start in the workload, and how they are drawn.
#[derive(Clone, Copy)]
pub(super) struct Stretch {
    /// The number of the run's first request: a run that follows another (the warm-up, the
    /// previous minute) goes on where that one stopped.
    pub first: u64,
    pub seed: u64,
}

impl Stretch {
    /// The stretch after `self` ran at `rate` for `duration`.
    pub fn after(self, rate: f64, duration: Duration, seed: u64) -> Self {
        Self {
            first: self.first + (rate * duration.as_secs_f64()).ceil() as u64,
            seed,
        }
    }
}

/// Sends requests at `rate` per second for `duration`, each timed from its due time.
pub(super) async fn run_at(
    clients: &[AsyncClient],
    workload: &Arc<Workload>,
    mix: &Mix,
    rate: f64,
    duration: Duration,
    stretch: Stretch,
) -> Outcome {
    let tallies: Arc<Mutex<BTreeMap<Kind, Tally>>> = Arc::default();
    let by_second: Arc<Mutex<BTreeMap<u64, Second>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut random = SplitMix(stretch.seed);
    let started = Instant::now();
    let mut running = Vec::new();
    for n in stretch.first.. {
        let due = started + Duration::from_secs_f64((n - stretch.first) as f64 / rate);
        if due >= started + duration {
            break;
        }
        tokio::time::sleep_until(due).await;
        let kind = mix.pick(random.next());
        let call = workload.request(kind, n, random.next());
        let client = clients[n as usize % clients.len()].clone();
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tallies.lock().entry(kind).or_default().failed += 1;
            continue;
        };
        let tallies = tallies.clone();
        let by_second = by_second.clone();
        let second = (due - started).as_secs();
        running.push(tokio::spawn(async move {
            let ok = call.succeeds(&client).await;
            let elapsed = due.elapsed().as_secs_f64() * 1000.0;
            let mut tallies = tallies.lock();
            let tally = tallies.entry(kind).or_default();
            if ok {
                tally.latencies.push(elapsed);
                by_second.lock().entry(second).or_default().record(elapsed);
            } else {
                tally.failed += 1;
            }
            drop(permit);
        }));
    }
    for request in running {
        let _ = request.await;
    }
    let mut by_kind = std::mem::take(&mut *tallies.lock());
    for tally in by_kind.values_mut() {
        tally.latencies.sort_by(f64::total_cmp);
    }
    let by_second = std::mem::take(&mut *by_second.lock());
    Outcome {
        rate,
        seconds: duration.as_secs_f64(),
        by_kind,
        by_second,
    }
}

pub async fn run(args: LoadArgs) -> Result<()> {
    if !args.rate.is_finite() || args.rate <= 0.0 || args.duration == 0 {
        bail!("--rate and --duration must be positive");
    }
    let workload = Arc::new(Workload::load(&args)?);
    let local_key = (args.keyed && args.target.is_empty()).then(ApiKey::generate);
    let local = match args.target.is_empty() {
        true => {
            let gateway = GatewayConfig {
                keys: KeyRing::new(local_key.iter().map(|key| (Scope::Storefront, key.hash()))),
                ..GatewayConfig::default()
            };
            let actors = ActorConfig::default();
            Some(LocalNode::start_with(CatalogSource::Demo, actors, gateway).await?)
        }
        false => None,
    };
    let api_key = match &local_key {
        Some(key) => Some(key.expose().to_string()),
        None => args.api_key.clone(),
    };
    let targets: Vec<String> = match &local {
        Some(node) => vec![node.base_url.clone()],
        None => args.target.clone(),
    };
    let config = ClientConfig {
        max_idle_per_host: Some(MAX_IN_FLIGHT),
        api_key,
        ..ClientConfig::timeout(REQUEST_TIMEOUT)
    };
    let first = AsyncClient::new(&targets[0], config)?;
    let clients = targets
        .iter()
        .map(|target| first.at(target))
        .collect::<Result<Vec<_>, _>>()?;
    let duration = Duration::from_secs(args.duration);
    let mut rate = args.rate;
    let mut stretch = Stretch {
        first: 0,
        seed: args.seed,
    };
    if args.warmup > 0 {
        let warmup = Duration::from_secs(args.warmup);
        let warm = Stretch {
            seed: args.seed.wrapping_add(1),
            ..stretch
        };
        run_at(&clients, &workload, &args.mix, rate, warmup, warm).await;
        stretch = warm.after(rate, warmup, args.seed);
    }
    let mut held: Option<Value> = None;
    let last = loop {
        let outcome = run_at(&clients, &workload, &args.mix, rate, duration, stretch).await;
        stretch = stretch.after(rate, duration, args.seed);
        let report = outcome.report();
        print_table(&report);
        if args.by_second {
            print_by_second(&outcome.by_second);
        }
        if !args.find_max {
            break report;
        }
        if !outcome.holds(args.p99_ms) {
            println!(
                "\n{rate} requests/s does not hold p99 ≤ {} ms with ≤ 1% errors",
                args.p99_ms
            );
            break json!({ "highest_rate_held": held.as_ref().map(|r| r["rate"].clone()), "held": held, "p99_target_ms": args.p99_ms });
        }
        held = Some(report);
        rate *= 1.5;
    };
    if let Some(node) = local {
        node.stop().await?;
    }
    if args.json {
        println!("{last}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_or_name_the_problem() {
        let cases = [
            ("events=60,recommend=30,search=10", Ok(3)),
            ("search=1", Ok(1)),
            ("events", Err("is not kind=weight")),
            ("browse=3", Err("is not events, recommend or search")),
            ("events=x", Err("is not a whole number")),
            ("events=0", Err("positive weight")),
        ];
        for (text, expected) in cases {
            match (parse_mix(text), expected) {
                (Ok(mix), Ok(kinds)) => assert_eq!(mix.0.len(), kinds, "{text}"),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{text}: {error}"),
                (outcome, _) => panic!("{text}: unexpected {outcome:?}"),
            }
        }
    }

    #[test]
    fn a_mix_picks_each_kind_by_its_weight() {
        let mix = parse_mix("events=3,search=1").unwrap();
        let picks: Vec<Kind> = (0..4).map(|ticket| mix.pick(ticket)).collect();
        assert_eq!(
            picks,
            [Kind::Events, Kind::Events, Kind::Events, Kind::Search]
        );
    }
}
