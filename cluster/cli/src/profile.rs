//! `inkling profile build`: shopper segments and association rules from a stopped node's
//! data.

use std::path::PathBuf;

use clap::Subcommand;
use inkling_models::baskets::RuleThresholds;

#[derive(Subcommand)]
pub enum ProfileCommand {
    /// Shopper segments (k-means) and association rules from a stopped node's data.
    Build {
        /// The node's data folder.
        #[arg(long, env = "INKLING_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// Number of segments (k).
        #[arg(long, default_value_t = 16)]
        segments: usize,
        /// Most k-means iterations.
        #[arg(long, default_value_t = 50)]
        iterations: usize,
        /// Baskets a pair must share to become a rule.
        #[arg(long, default_value_t = 2)]
        min_support: u32,
        /// Least confidence of a rule A -> B: baskets with both / baskets with A.
        #[arg(long, default_value_t = 0.05)]
        min_confidence: f32,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: ProfileCommand) -> anyhow::Result<()> {
    let ProfileCommand::Build {
        data_dir,
        segments,
        iterations,
        min_support,
        min_confidence,
        json,
    } = command;
    let options = inkling_tools::profiles::ProfileBuild {
        data_dir,
        segments,
        iterations: iterations.max(1),
        thresholds: RuleThresholds {
            min_support: min_support.max(1),
            min_confidence,
            ..Default::default()
        },
    };
    let report = inkling_tools::profiles::build(&options)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        inkling_tools::profiles::print_table(&report);
    }
    Ok(())
}
