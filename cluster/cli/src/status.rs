//! `inkling status` and `inkling drain`: a running cluster as one node sees it, and taking a
//! node out of it.

#[derive(clap::Args)]
pub struct StatusArgs {
    /// The node's --listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    node: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DrainArgs {
    /// The node's --listen address.
    #[arg(long)]
    node: String,
}

pub fn show(args: StatusArgs) -> anyhow::Result<()> {
    inkling_tools::status::show(&args.node, args.json)
}

pub fn drain(args: DrainArgs) -> anyhow::Result<()> {
    inkling_tools::status::drain(&args.node)
}
