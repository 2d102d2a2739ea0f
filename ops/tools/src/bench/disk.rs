//! How a node's data folder grows under a steady load, against the live data it holds.
//!
//! A local node (demo catalog, no encoder) takes `bench load`'s open-loop requests for a
//! number of minutes; after each minute the benchmark weighs the data folder's parts on
//! disk. At the end it stops the node, opens its sled folder and sums every live key and
//! value per keyspace, so the folder's size can be read as a multiple of its live data.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Parser;
use inkling_actors::ActorConfig;
use inkling_api::{AsyncClient, ClientConfig};
use inkling_node::{CatalogSource, LocalNode};
use inkling_storage::{Keyspace, KvEngine, SledEngine};

use super::load::{self, LoadArgs, Workload};

#[derive(clap::Args)]
pub struct DiskArgs {
    /// Minutes of load; the data folder is weighed after each.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    minutes: u64,
    /// Requests per second, open loop.
    #[arg(long, default_value_t = 300.0)]
    rate: f64,
    /// Shares of each request kind, as `bench load` takes them.
    #[arg(long, default_value = "events=1")]
    mix: String,
    /// Distinct shoppers: few shoppers with long histories, as in the chaos soak, make the
    /// largest profiles.
    #[arg(long, default_value_t = 200)]
    shoppers: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Bytes the parts of a data folder take on disk, as `du` counts them.
struct FolderSize {
    sled_files: u64,
    sled_blobs: u64,
    user_keys: u64,
    index: u64,
    total: u64,
}

impl FolderSize {
    fn of(data_dir: &Path) -> Result<Self> {
        let sled = data_dir.join("sled");
        let blobs = allocated_bytes(&sled.join("blobs"))?;
        let user_keys = allocated_bytes(&sled.join(inkling_storage::engine::USER_KEYS_FOLDER))?;
        Ok(Self {
            sled_files: allocated_bytes(&sled)? - blobs - user_keys,
            sled_blobs: blobs,
            user_keys,
            index: allocated_bytes(&data_dir.join("index"))?,
            total: allocated_bytes(data_dir)?,
        })
    }
}

/// Disk blocks under `path`, in bytes.
fn allocated_bytes(path: &Path) -> Result<u64> {
    inkling_storage::disk::allocated_bytes(path).with_context(|| path.display().to_string())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// `bench load`'s settings for this run, from its own parser, so its defaults stay in one
/// place.
fn load_args(args: &DiskArgs) -> Result<LoadArgs> {
    #[derive(Parser)]
    struct Load {
        #[command(flatten)]
        args: LoadArgs,
    }
    let argv = [
        "load".to_string(),
        format!("--rate={}", args.rate),
        format!("--mix={}", args.mix),
        format!("--shoppers={}", args.shoppers),
        format!("--seed={}", args.seed),
    ];
    Ok(Load::try_parse_from(argv)?.args)
}

pub async fn run(args: DiskArgs) -> Result<()> {
    if !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--rate must be positive");
    }
    let load = load_args(&args)?;
    let workload = std::sync::Arc::new(Workload::load(&load)?);
    let node = LocalNode::start(CatalogSource::Demo, ActorConfig::default()).await?;
    let config = ClientConfig {
        max_idle_per_host: Some(load::MAX_IN_FLIGHT),
        ..ClientConfig::timeout(load::REQUEST_TIMEOUT)
    };
    let clients = [AsyncClient::new(&node.base_url, config)?];
    println!(
        "{} requests/s ({}), {} shoppers, {} minutes; data folder sizes after each minute (MiB)\n",
        args.rate, args.mix, args.shoppers, args.minutes
    );
    println!(
        "| minute | requests ok | errors | sled files | sled blobs | user keys | index | folder |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let minute_long = Duration::from_secs(60);
    let mut stretch = load::Stretch {
        first: 0,
        seed: load.seed,
    };
    for minute in 1..=args.minutes {
        let outcome = load::run_at(
            &clients,
            &workload,
            &load.mix,
            load.rate,
            minute_long,
            stretch,
        )
        .await;
        stretch = stretch.after(load.rate, minute_long, load.seed.wrapping_add(minute));
        let (ok, failed) = outcome.counts();
        let size = FolderSize::of(node.data_dir())?;
        println!(
            "| {minute} | {ok} | {failed} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            mib(size.sled_files),
            mib(size.sled_blobs),
            mib(size.user_keys),
            mib(size.index),
            mib(size.total)
        );
    }
    let folder = node.stop_keeping_data().await?;
    print_live_data(folder.path())
}

/// What the stopped node's sled folder holds, per keyspace, against its size on disk.
fn print_live_data(data_dir: &Path) -> Result<()> {
    let size = FolderSize::of(data_dir)?;
    let engine = SledEngine::open(&data_dir.join("sled"))?;
    println!("\nLive data in the stopped node's sled folder:\n");
    println!("| keyspace | keys | live MiB |");
    println!("|---|---:|---:|");
    let mut live = 0;
    for keyspace in Keyspace::ALL {
        let pairs = engine.scan(keyspace)?;
        let bytes: u64 = pairs
            .iter()
            .map(|(key, value)| (key.len() + value.len()) as u64)
            .sum();
        live += bytes;
        println!(
            "| {} | {} | {:.1} |",
            keyspace.name(),
            pairs.len(),
            mib(bytes)
        );
    }
    let on_disk = size.sled_files + size.sled_blobs;
    println!(
        "\nsled on disk {:.1} MiB for {:.1} MiB live: {:.1}× (user keys {:.1} MiB, index {:.1} MiB beside it)",
        mib(on_disk),
        mib(live),
        on_disk as f64 / live.max(1) as f64,
        mib(size.user_keys),
        mib(size.index)
    );
    Ok(())
}
