//! The two sources of `serve`'s configuration that figment has no provider for as we need
//! them: the environment variables a node has always read, and the flags the user set.

use figment::value::{Dict, Map, Value};
use figment::{Error, Metadata, Profile, Provider};
use serde::Serialize;

/// The keys a node also reads from the environment, each as `INKLING_` and the key in
/// capitals (`INKLING_LISTEN`). Only these: a node's environment holds other `INKLING_`
/// variables (`INKLING_LOG_FORMAT`, `INKLING_FAILPOINTS_FILE`) that are not settings of
/// `serve`.
pub const ENV_KEYS: [&str; 24] = [
    "data_dir",
    "listen",
    "peer_listen",
    "api_keys",
    "api_keys_file",
    "node_name",
    "initial_members",
    "seeds",
    "roles",
    "actor_addr",
    "advertise",
    "advertise_actor",
    "cluster_secret_file",
    "accepted_cluster_secret_file",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "shards",
    "index_replicas",
    "model",
    "models_dir",
    "ranker",
    "search_ranker",
    "taxonomy",
];

/// The keys of [`ENV_KEYS`] whose values are numbers.
const NUMERIC_ENV_KEYS: [&str; 2] = ["shards", "index_replicas"];

/// The environment variable that sets `key`.
pub fn env_name(key: &str) -> String {
    format!("INKLING_{}", key.to_ascii_uppercase())
}

/// The variables of [`ENV_KEYS`], each value taken as written. figment's own `Env` would
/// parse values as TOML-like literals, turning a node name such as `0123` into the number 123.
pub struct Environment;

impl Provider for Environment {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, path: &[&str]| env_name(&path.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for key in ENV_KEYS {
            let name = env_name(key);
            match std::env::var(&name) {
                Ok(value) => {
                    dict.insert(key.to_string(), env_value(key, value));
                }
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::from(format!("{name} is not valid UTF-8")));
                }
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// A variable's value as written, or as a number for a numeric key (left as written when
/// it is not one, so the error names the variable).
fn env_value(key: &str, value: String) -> Value {
    if NUMERIC_ENV_KEYS.contains(&key)
        && let Ok(number) = value.trim().parse::<u64>()
    {
        return Value::from(number);
    }
    Value::from(value)
}

/// The flags the user set (unset ones must serialize to nothing), named as flags in errors.
pub struct CommandLine<T>(pub T);

impl<T: Serialize> Provider for CommandLine<T> {
    fn metadata(&self) -> Metadata {
        Metadata::named("command line")
            .interpolater(|_: &Profile, path: &[&str]| flag_name(&path.join(".")))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        figment::providers::Serialized::defaults(&self.0).data()
    }
}

/// The flag that sets `key`.
pub fn flag_name(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}
