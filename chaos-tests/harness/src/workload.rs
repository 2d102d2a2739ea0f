//! Shoppers: threads that send event batches with idempotency keys, recommendations and
//! searches through every gateway, retrying each request with backoff within a budget, and
//! logging every acknowledged event as (user, key) with the commit record the node gave.
//! Beside them a merchant, when the run has an admin key, writes new editions of a few
//! products and deletes them, logging which writes were acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inkling_api::{
    Client, EventBatch, EventBody, EventType, EventsAnswer, ProductBatch, ProductBody,
    RecommendBody, SearchBody, SearchMode,
};
use parking_lot::{Mutex, RwLock};

use crate::client;
use crate::schedule::Rng;

/// Items the shoppers look at: products of the demo catalog.
const ITEMS: [&str; 5] = [
    "xiaomi-12",
    "iphone-se",
    "iphone-14",
    "ipad-mini",
    "macbook-pro",
];
const QUERIES: [&str; 3] = ["手机", "phone", "laptop"];

/// The products the merchant writes, `chaosware-0` to `chaosware-7`, each titled
/// `Chaosware N edition E` so a search for the word finds every live one and its edition.
pub const CHAOSWARE_PRODUCTS: usize = 8;
pub const CHAOSWARE_WORD: &str = "chaosware";

/// How many of a shopper's think times the merchant waits between writes.
const MERCHANT_PACE: u32 = 5;

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    pub shoppers: usize,
    pub users_per_shopper: usize,
    /// How long a client keeps retrying one request, across gateways.
    pub retry_budget: Duration,
    /// Pause between a shopper's requests.
    pub think_time: Duration,
    /// Names users `{prefix}-s{shopper}-u{n}`: distinct per run.
    pub prefix: String,
    pub seed: u64,
    /// The storefront key shoppers call with; set by the harness from the cluster's.
    pub api_key: Option<String>,
    /// The admin key the merchant writes products with; no merchant runs without one.
    pub admin_key: Option<String>,
}

/// Which partition leader committed an acknowledged batch, and in which term.
#[derive(Debug, Clone, Copy)]
pub struct CommitRecord {
    pub partition: u64,
    pub term: u64,
    pub leader: u64,
}

/// One acknowledged event batch.
#[derive(Debug, Clone)]
pub struct Ack {
    pub user: String,
    pub keys: Vec<String>,
    /// When the client first sent it and when it got the 2xx.
    pub started: Instant,
    pub finished: Instant,
    pub commits: Vec<CommitRecord>,
}

/// One request, whatever its kind, with its outcome.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub user: String,
    pub kind: &'static str,
    pub started: Instant,
    pub finished: Instant,
    pub ok: bool,
    /// The last error, for a request that failed.
    pub error: Option<String>,
    /// Every attempt, in order: the evidence behind a slow failover.
    pub attempts: Vec<Attempt>,
}

/// One try of a request at one gateway.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub gateway: String,
    pub started: Instant,
    pub finished: Instant,
    /// Why it failed; none for the attempt that was answered.
    pub error: Option<String>,
}

/// One catalog write the merchant sent, in the order sent: an edition of a product, or its
/// deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogWrite {
    pub product: String,
    /// The edition written; `None` for a deletion.
    pub edition: Option<u64>,
    pub acknowledged: bool,
}

/// What the shoppers and the merchant did.
#[derive(Debug, Default)]
pub struct Journal {
    pub acks: Vec<Ack>,
    /// Every key ever sent, per user, acknowledged or not.
    pub sent: BTreeMap<String, Vec<String>>,
    pub requests: Vec<RequestRecord>,
    pub catalog: Vec<CatalogWrite>,
}

impl Journal {
    fn merge(&mut self, other: Journal) {
        self.acks.extend(other.acks);
        for (user, keys) in other.sent {
            self.sent.entry(user).or_default().extend(keys);
        }
        self.requests.extend(other.requests);
        self.catalog.extend(other.catalog);
    }

    /// Every user that was sent anything.
    pub fn users(&self) -> impl Iterator<Item = &String> {
        self.sent.keys()
    }
}

/// Running shoppers; [`Workload::stop`] answers their journal.
pub struct Workload {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Journal>>,
}

impl Workload {
    /// Starts the shoppers against `gateways`, which the caller may update (a node joined).
    pub fn start(config: WorkloadConfig, gateways: Arc<RwLock<Vec<String>>>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let balancer = Arc::new(Balancer {
            gateways,
            ejected: Mutex::new(HashMap::new()),
        });
        let mut threads: Vec<JoinHandle<Journal>> = (0..config.shoppers)
            .map(|shopper| {
                let (config, balancer, stop) = (config.clone(), balancer.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("shopper-{shopper}"))
                    .spawn(move || shop(shopper, &config, &balancer, &stop))
                    .expect("start a shopper thread")
            })
            .collect();
        if config.admin_key.is_some() {
            let (balancer, stop) = (balancer.clone(), stop.clone());
            let merchant = std::thread::Builder::new()
                .name("merchant".to_string())
                .spawn(move || merchant(&config, &balancer, &stop))
                .expect("start the merchant thread");
            threads.push(merchant);
        }
        Self { stop, threads }
    }

    pub fn stop(self) -> Journal {
        self.stop.store(true, Ordering::Relaxed);
        let mut journal = Journal::default();
        for thread in self.threads {
            if let Ok(part) = thread.join() {
                journal.merge(part);
            }
        }
        journal
    }
}

/// What the shoppers share, as clients behind one load balancer would: the gateways, and
/// those that recently gave no answer at all (refused, or timed out: a dead or frozen
/// node), which are skipped for a while (outlier ejection).
struct Balancer {
    gateways: Arc<RwLock<Vec<String>>>,
    ejected: Mutex<HashMap<String, Instant>>,
}

/// How long a gateway that gave no answer is skipped.
const EJECTION: Duration = Duration::from_secs(3);

impl Balancer {
    /// The gateway at `index` or the next one not ejected (any, if all are).
    fn pick(&self, index: &mut usize) -> String {
        let gateways = self.gateways.read();
        let ejected = self.ejected.lock();
        let now = Instant::now();
        for offset in 0..gateways.len() {
            let url = &gateways[(*index + offset) % gateways.len()];
            if ejected.get(url).is_none_or(|until| *until <= now) {
                *index += offset;
                return url.clone();
            }
        }
        gateways[*index % gateways.len()].clone()
    }

    /// A client for the first gateway, calling with `key`; `None`, said on stderr, when
    /// `who` cannot have one.
    fn client(&self, key: Option<&str>, who: &str) -> Option<Client> {
        let first = self.gateways.read()[0].clone();
        client::client(&first, key)
            .inspect_err(|error| eprintln!("{who} has no HTTP client: {error:#}"))
            .ok()
    }

    fn eject(&self, url: &str) {
        self.ejected
            .lock()
            .insert(url.to_string(), Instant::now() + EJECTION);
    }
}

fn shop(
    shopper: usize,
    config: &WorkloadConfig,
    balancer: &Balancer,
    stop: &AtomicBool,
) -> Journal {
    let mut rng = Rng::new(config.seed ^ (shopper as u64).wrapping_mul(0x9e37_79b9));
    let users: Vec<String> = (0..config.users_per_shopper)
        .map(|n| format!("{}-s{shopper}-u{n}", config.prefix))
        .collect();
    let mut journal = Journal::default();
    let mut sequence = 0u64;
    // A client sticks to the gateway that last answered and moves on when it fails.
    let mut gateway = shopper;
    // One client per shopper; each attempt moves it to the gateway the balancer picks.
    let who = format!("shopper {shopper}");
    let Some(client) = balancer.client(config.api_key.as_deref(), &who) else {
        return journal;
    };
    while !stop.load(Ordering::Relaxed) {
        let user = users[rng.below(users.len())].clone();
        let roll = rng.below(10);
        let (kind, call, keys) = if roll < 7 {
            let count = 1 + rng.below(3);
            let keys: Vec<String> = (0..count)
                .map(|_| {
                    sequence += 1;
                    format!("{user}-{sequence}")
                })
                .collect();
            let events = keys
                .iter()
                .map(|key| {
                    let item = ITEMS[rng.below(ITEMS.len())];
                    EventBody {
                        event_id: Some(key.clone()),
                        ..EventBody::on_item(&user, EventType::View, item)
                    }
                })
                .collect();
            journal
                .sent
                .entry(user.clone())
                .or_default()
                .extend(keys.iter().cloned());
            // `debug` answers the raft commits the ownership checks read.
            let batch = EventBatch {
                debug: true,
                ..EventBatch::new(events)
            };
            ("events", Call::Events(batch), keys)
        } else if roll < 9 {
            let body = RecommendBody::new(&user, 5);
            ("recommend", Call::Recommend(body), Vec::new())
        } else {
            let query = QUERIES[rng.below(QUERIES.len())];
            let body = SearchBody {
                mode: SearchMode::Lexical,
                ..SearchBody::new(&user, query, 5)
            };
            ("search", Call::Search(body), Vec::new())
        };
        let started = Instant::now();
        let mut attempts = Vec::new();
        let answered = with_retries(
            config.retry_budget,
            balancer,
            &mut gateway,
            &mut attempts,
            |url| call.send(&client.at(url)?),
        );
        let finished = Instant::now();
        if let Ok(Some(answer)) = &answered {
            let commits = answer
                .commits
                .iter()
                .map(|commit| CommitRecord {
                    partition: u64::from(commit.partition),
                    term: commit.term,
                    leader: commit.leader,
                })
                .collect();
            journal.acks.push(Ack {
                user: user.clone(),
                keys,
                started,
                finished,
                commits,
            });
        }
        journal.requests.push(RequestRecord {
            user,
            kind,
            started,
            finished,
            ok: answered.is_ok(),
            error: answered.err(),
            attempts,
        });
        std::thread::sleep(config.think_time);
    }
    journal
}

/// Writes new editions of the chaosware products and deletes them, one write at a time,
/// each retried within the budget, until stopped.
fn merchant(config: &WorkloadConfig, balancer: &Balancer, stop: &AtomicBool) -> Journal {
    let mut journal = Journal::default();
    let Some(client) = balancer.client(config.admin_key.as_deref(), "the merchant") else {
        return journal;
    };
    let mut rng = Rng::new(config.seed ^ 0x6d65_7263);
    let mut editions = [0u64; CHAOSWARE_PRODUCTS];
    let mut gateway = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let n = rng.below(CHAOSWARE_PRODUCTS);
        let product = format!("{CHAOSWARE_WORD}-{n}");
        // Mostly new editions, sometimes a deletion.
        let edition = (rng.below(5) > 0).then(|| {
            editions[n] += 1;
            editions[n]
        });
        let mut attempts = Vec::new();
        let answered = with_retries(
            config.retry_budget,
            balancer,
            &mut gateway,
            &mut attempts,
            |url| {
                let client = client.at(url)?;
                match edition {
                    Some(edition) => {
                        let title = format!("Chaosware {n} edition {edition}");
                        let body = ProductBody::new(product.clone(), title, 10.0);
                        let batch = ProductBatch {
                            products: vec![body],
                        };
                        client.upsert_products(&batch).map(drop)
                    }
                    // Deleting what is not there leaves it not there, as asked.
                    None => match client.delete_product(&product) {
                        Err(error) if error.status == Some(404) => Ok(()),
                        outcome => outcome.map(drop),
                    },
                }
            },
        );
        journal.catalog.push(CatalogWrite {
            product,
            edition,
            acknowledged: answered.is_ok(),
        });
        std::thread::sleep(config.think_time * MERCHANT_PACE);
    }
    journal
}

/// One request of a shopper.
enum Call {
    Events(EventBatch),
    Recommend(RecommendBody),
    Search(SearchBody),
}

impl Call {
    /// Sends it; answers the commit records of an events batch.
    fn send(&self, client: &Client) -> Result<Option<EventsAnswer>, inkling_api::Error> {
        match self {
            Call::Events(batch) => client.events(batch).map(Some),
            Call::Recommend(body) => client.recommend(body).map(|_| None),
            Call::Search(body) => client.search(body).map(|_| None),
        }
    }
}

/// Calls `attempt` on the current gateway until it answers, moving to the next gateway on
/// every failure, with backoff from 50 ms to 1 s, until `budget` is spent. A 4xx other than
/// 429 is the client's fault and is not retried; a gateway that gave no answer at all is
/// ejected for a while.
fn with_retries<T>(
    budget: Duration,
    balancer: &Balancer,
    gateway: &mut usize,
    attempts: &mut Vec<Attempt>,
    attempt: impl Fn(&str) -> Result<T, inkling_api::Error>,
) -> Result<T, String> {
    let deadline = Instant::now() + budget;
    let mut backoff = Duration::from_millis(50);
    loop {
        let url = balancer.pick(gateway);
        let started = Instant::now();
        let outcome = attempt(&url);
        attempts.push(Attempt {
            gateway: url.clone(),
            started,
            finished: Instant::now(),
            error: outcome.as_ref().err().map(ToString::to_string),
        });
        let error = match outcome {
            Ok(answer) => return Ok(answer),
            Err(error) if error.is_client_error() => return Err(format!("{url}: {error}")),
            Err(error) => error,
        };
        if error.is_no_answer() {
            balancer.eject(&url);
        }
        *gateway += 1;
        if Instant::now() + backoff >= deadline {
            return Err(format!("{url}: {error} (retry budget spent)"));
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}
