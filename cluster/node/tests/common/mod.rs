//! One in-process node on loopback for the HTTP tests, over real sled and tantivy: a fresh
//! data folder, a free port, and a client for it.

use std::time::Duration;

use inkling_actors::ActorConfig;
use inkling_api::{Client, ClientConfig};
use inkling_node::{CatalogSource, GatewayConfig, Node, NodeOptions};

/// Generous: a debug build embedding with a real encoder on a busy machine.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What keeps a started node alive: its data folder and the runtime it serves on.
pub struct Running {
    _data: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

/// Starts a node on `catalog` with `actors` and `gateway`; answers a client for it and
/// what must live as long as the node does.
#[allow(dead_code)] // Not every test file that includes this module uses it.
pub fn start_node(
    catalog: CatalogSource,
    actors: ActorConfig,
    gateway: GatewayConfig,
) -> (Client, Running) {
    start_configured(catalog, |options| {
        options.actors = actors;
        options.gateway = gateway;
    })
}

/// Starts a node on `catalog` with the defaults as `configure` changes them.
#[allow(dead_code)]
pub fn start_configured(
    catalog: CatalogSource,
    configure: impl FnOnce(&mut NodeOptions),
) -> (Client, Running) {
    let data = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut options = NodeOptions::new(
        data.path().to_path_buf(),
        "127.0.0.1:0".parse().unwrap(),
        catalog,
    );
    configure(&mut options);
    let base_url = runtime.block_on(async {
        let node = Node::start(&options).await.unwrap();
        let address = node.local_addr().unwrap();
        tokio::spawn(node.serve(std::future::pending()));
        format!("http://{address}")
    });
    let client = Client::new(&base_url, ClientConfig::timeout(CALL_TIMEOUT)).unwrap();
    let running = Running {
        _data: data,
        _runtime: runtime,
    };
    (client, running)
}
