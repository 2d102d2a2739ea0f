//! `inkling status` and `inkling drain`: a running cluster as one node sees it, and taking a
//! node out of it. Both call the node's admin routes, with an admin key when it has keys.

/// Where the node is and the key to call it with.
#[derive(clap::Args)]
pub struct NodeArgs {
    /// The node's --listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    node: String,
    /// An admin API key (from the environment, so `ps` does not show it); needed when the
    /// node has keys.
    #[arg(long, env = "INKLING_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

#[derive(clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    node: NodeArgs,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct DrainArgs {
    #[command(flatten)]
    node: NodeArgs,
}

impl NodeArgs {
    /// Admits `name` through this node.
    pub fn admit(self, name: &str) -> anyhow::Result<String> {
        inkling_tools::status::admit(&self.node, self.api_key.as_deref(), name)
    }
}

pub fn show(args: StatusArgs) -> anyhow::Result<()> {
    let NodeArgs { node, api_key } = args.node;
    inkling_tools::status::show(&node, api_key.as_deref(), args.json)
}

pub fn drain(args: DrainArgs) -> anyhow::Result<()> {
    let NodeArgs { node, api_key } = args.node;
    inkling_tools::status::drain(&node, api_key.as_deref())
}
