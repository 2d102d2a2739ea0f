//! How the harness and its shoppers call nodes: the typed API client, with a timeout per
//! call short enough to fail over. They only ever talk to nodes through the public API:
//! shoppers with the storefront key, the harness with the admin key.

use std::time::Duration;

use inkling_api::{Client, ClientConfig};

/// One attempt may take this long before a client tries the next gateway: a frozen node
/// accepts connections and never answers, and a client that waited out the node's own
/// 5 s deadline would see every failover as slow as that.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// An administrative call (a drain moves replicas before it answers) may take this long.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of the node at `base_url` with the shoppers' timeouts, calling with
/// `api_key`; [`Client::at`] moves it to another node.
pub(crate) fn client(base_url: &str, api_key: Option<&str>) -> anyhow::Result<Client> {
    let config = ClientConfig {
        connect_timeout: Some(CONNECT_TIMEOUT),
        api_key: api_key.map(str::to_string),
        ..ClientConfig::timeout(CALL_TIMEOUT)
    };
    Ok(Client::new(base_url, config)?)
}
