//! `serve`'s configuration: which source wins, that every flag has a file key, and that a
//! bad value is refused naming where it came from.

use clap::{CommandFactory, Parser};
use serde_json::{Value, json};

use super::values::Member;
use super::{ServeConfig, ServeFlags};

#[derive(Parser)]
struct ServeCli {
    #[command(flatten)]
    flags: ServeFlags,
}

/// A config file (when given), environment variables and flags, as a node would see them.
struct Sources<'a> {
    file: Option<&'a str>,
    env: &'a [(&'a str, &'a str)],
    flags: &'a [&'a str],
}

/// Loads `serve`'s configuration from `sources` alone: the environment is cleared, then
/// set, inside a figment `Jail` (which also keeps tests that set it from running at once).
// The jail's closure must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
fn load(sources: &Sources) -> Result<ServeConfig, String> {
    let mut outcome = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        for (name, value) in sources.env {
            jail.set_env(name, value);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["serve".to_string()];
        if let Some(text) = sources.file {
            let path = dir.path().join("node.toml");
            std::fs::write(&path, text).unwrap();
            argv.extend(["--config".to_string(), path.display().to_string()]);
        }
        argv.extend(sources.flags.iter().map(|flag| flag.to_string()));
        outcome = Some(
            ServeCli::try_parse_from(&argv)
                .map_err(|error| error.to_string())
                .and_then(|cli| {
                    ServeConfig::load(&cli.flags).map_err(|error| format!("{error:#}"))
                }),
        );
        Ok(())
    });
    outcome.expect("the jail ran")
}

fn given<'a>(
    file: Option<&'a str>,
    env: &'a [(&'a str, &'a str)],
    flags: &'a [&'a str],
) -> Sources<'a> {
    Sources { file, env, flags }
}

fn setting(config: &ServeConfig, key: &str) -> Value {
    serde_json::to_value(config).unwrap()[key].clone()
}

const FILE: &str = r#"
listen = "127.0.0.2:7002"
node_name = "from-file"
shards = 8
seeds = ["127.0.0.9:7280"]
initial_members = ["from-file=127.0.0.2:7002"]
"#;

#[test]
fn defaults_then_file_then_environment_then_flags() {
    let cases: [(&str, Sources, &str, Value); 16] = [
        (
            "the default",
            given(None, &[], &[]),
            "listen",
            json!("127.0.0.1:8080"),
        ),
        (
            "the file over the default",
            given(Some(FILE), &[], &[]),
            "listen",
            json!("127.0.0.2:7002"),
        ),
        (
            "the environment over the file",
            given(Some(FILE), &[("INKLING_LISTEN", "127.0.0.3:7003")], &[]),
            "listen",
            json!("127.0.0.3:7003"),
        ),
        (
            "a flag over the environment and the file",
            given(
                Some(FILE),
                &[("INKLING_LISTEN", "127.0.0.3:7003")],
                &["--listen", "127.0.0.4:7004"],
            ),
            "listen",
            json!("127.0.0.4:7004"),
        ),
        (
            "a flag over the environment",
            given(
                None,
                &[("INKLING_NODE_NAME", "from-env")],
                &["--node-name", "from-flag"],
            ),
            "node_name",
            json!("from-flag"),
        ),
        (
            "a flag over the file",
            given(Some(FILE), &[], &["--shards", "16"]),
            "shards",
            json!(16),
        ),
        (
            "a flag left out hides nothing",
            given(Some(FILE), &[], &["--listen", "127.0.0.4:7004"]),
            "node_name",
            json!("from-file"),
        ),
        (
            "only the environment variables a node has always read",
            given(
                None,
                &[("INKLING_MAX_BATCH", "2"), ("INKLING_FAILPOINTS_FILE", "f")],
                &[],
            ),
            "max_batch",
            json!(32),
        ),
        (
            "index shards and their replicas from the environment",
            given(
                Some("shards = 16"),
                &[("INKLING_SHARDS", "8"), ("INKLING_INDEX_REPLICAS", "2")],
                &[],
            ),
            "index_replicas",
            json!(2),
        ),
        (
            "the shard count from the environment over the file",
            given(Some("shards = 16"), &[("INKLING_SHARDS", "8")], &[]),
            "shards",
            json!(8),
        ),
        (
            "an environment list is comma-separated",
            given(
                Some(FILE),
                &[("INKLING_SEEDS", "127.0.0.1:7280,127.0.0.2:7280")],
                &[],
            ),
            "seeds",
            json!(["127.0.0.1:7280", "127.0.0.2:7280"]),
        ),
        (
            "a flag list replaces the file's",
            given(
                Some(FILE),
                &[],
                &["--initial-members", "a=127.0.0.1:1,b=127.0.0.2:2"],
            ),
            "initial_members",
            json!(["a=127.0.0.1:1", "b=127.0.0.2:2"]),
        ),
        (
            "a file list",
            given(Some(FILE), &[], &[]),
            "initial_members",
            json!(["from-file=127.0.0.2:7002"]),
        ),
        (
            "an environment value is taken as written",
            given(None, &[("INKLING_NODE_NAME", "0123")], &[]),
            "node_name",
            json!("0123"),
        ),
        (
            "roles are written back without spaces",
            given(None, &[("INKLING_ROLES", "gateway, index")], &[]),
            "roles",
            json!("gateway,index"),
        ),
        (
            "an encoder named in the environment",
            given(
                Some("model = \"none\""),
                &[("INKLING_MODEL", "all-minilm-l6-v2")],
                &[],
            ),
            "model",
            json!("all-minilm-l6-v2"),
        ),
    ];
    for (name, sources, key, expected) in cases {
        let config = load(&sources).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(setting(&config, key), expected, "{name}");
    }
}

/// Every key, each set to something other than its default.
const EVERY_KEY: &str = r#"
data_dir = "elsewhere"
listen = "127.0.0.5:7005"
peer_listen = "127.0.0.5:7007"
catalog = "file"
catalog_file = "products.jsonl"
taxonomy = "taxonomy.json"
session_idle_secs = 60
max_live_sessions = 1000
min_free_disk_mb = 100
api_keys = ["storefront:0000000000000000000000000000000000000000000000000000000000000000"]
api_keys_file = "keys.txt"
rate_limit = 10
rate_burst = 20
max_concurrent_requests = 16
expose_metrics = false
variants = ["control:90", "meaning:10:0.8"]
node_name = "node-5"
initial_members = ["node-5=127.0.0.5:7005", "node-6=127.0.0.6:7005"]
seeds = ["127.0.0.6:7005"]
roles = "gateway,index"
actor_addr = "127.0.0.5:7006"
advertise = "10.0.0.5:7005"
advertise_actor = "10.0.0.5:7006"
cluster_secret_file = "secret.hex"
accepted_cluster_secret_file = "accepted.hex"
raft_snapshot_every = 50
tls_cert = "node.pem"
tls_key = "node.key"
tls_ca = "ca.pem"
shards = 2
index_replicas = 2
segmentation = "bigram"
model = "none"
models_dir = "models"
model_workers = 2
encoder_precision = "f32"
max_batch = 8
max_wait_us = 500
model_queue = 64
ranker = "ranker.json"
search_ranker = "search-ranker.json"
"#;

#[test]
fn every_flag_has_a_file_key() {
    let defaults = serde_json::to_value(ServeConfig::default()).unwrap();
    let keys: Vec<&String> = defaults.as_object().unwrap().keys().collect();
    let command = ServeCli::command();
    let flags: Vec<&str> = command
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| !["config", "help"].contains(id))
        .collect();
    let mut sorted_keys: Vec<&str> = keys.iter().map(|key| key.as_str()).collect();
    let mut sorted_flags = flags.clone();
    sorted_keys.sort_unstable();
    sorted_flags.sort_unstable();
    assert_eq!(sorted_flags, sorted_keys, "one file key per flag");

    let sources = given(Some(EVERY_KEY), &[], &[]);
    let config = load(&sources).unwrap();
    for key in keys {
        assert_ne!(setting(&config, key), defaults[key], "{key} was not read");
    }
}

#[test]
fn a_bad_value_names_its_source() {
    let cases: [(Sources, &[&str]); 11] = [
        (
            given(Some("listen = \"nowhere\""), &[], &[]),
            &[
                "invalid socket address",
                "key \"default.listen\"",
                "node.toml TOML file",
            ],
        ),
        (
            given(Some("listen = 5"), &[], &[]),
            &[
                "invalid type",
                "key \"default.listen\"",
                "node.toml TOML file",
            ],
        ),
        (
            given(Some("shards = 0"), &[], &[]),
            &[
                "0 is not in 1..=256",
                "key \"default.shards\"",
                "node.toml TOML file",
            ],
        ),
        (
            given(Some("roles = \"gateway,cache\""), &[], &[]),
            &[
                "`cache` is not a role",
                "key \"default.roles\"",
                "node.toml TOML file",
            ],
        ),
        (
            given(Some("initial_members = [\"node-1\"]"), &[], &[]),
            &[
                "is not NAME=ADDR",
                "default.initial_members",
                "node.toml TOML file",
            ],
        ),
        (
            given(Some("listn = \"127.0.0.1:1\""), &[], &[]),
            &["unknown field", "listn", "node.toml TOML file"],
        ),
        (
            given(Some("listen = ["), &[], &[]),
            &["TOML parse error", "node.toml TOML file"],
        ),
        (
            given(None, &[("INKLING_LISTEN", "nowhere")], &[]),
            &[
                "invalid socket address",
                "key \"INKLING_LISTEN\" in environment variable",
            ],
        ),
        (
            given(Some(FILE), &[("INKLING_MODEL", "gpt")], &[]),
            &[
                "unknown variant",
                "key \"INKLING_MODEL\" in environment variable",
            ],
        ),
        (
            given(None, &[("INKLING_INITIAL_MEMBERS", "a=127.0.0.1:1,b")], &[]),
            &[
                "`b` is not NAME=ADDR",
                "key \"INKLING_INITIAL_MEMBERS\" in environment variable",
            ],
        ),
        (
            given(None, &[], &["--roles", "gateway,cache"]),
            &["`cache` is not a role", "--roles"],
        ),
    ];
    for (sources, fragments) in cases {
        let error = match load(&sources) {
            Ok(_) => panic!(
                "{:?} {:?} {:?}: accepted",
                sources.file, sources.env, sources.flags
            ),
            Err(error) => error,
        };
        for fragment in fragments {
            assert!(error.contains(fragment), "{fragment:?} not in: {error}");
        }
    }
}

#[test]
fn a_missing_config_file_is_an_error() {
    let sources = given(None, &[], &["--config", "/nonexistent/node.toml"]);
    let error = load(&sources).err().unwrap();
    assert!(
        error.contains("cannot read /nonexistent/node.toml"),
        "{error}"
    );
}

#[test]
fn the_config_file_fills_what_the_command_line_left_unset() {
    let file = "node_name = \"from-file\"\nlisten = \"127.0.0.9:9000\"\ninitial_members = [\"from-file=127.0.0.9:9000\"]\nroles = \"gateway,index\"\napi_keys = \"metrics:0000000000000000000000000000000000000000000000000000000000000000\"\ntls_cert = \"n.pem\"\ntls_key = \"n.key\"\ntls_ca = \"ca.pem\"\n";
    let sources = given(Some(file), &[], &["--listen", "127.0.0.8:8000"]);
    let config = load(&sources).unwrap();
    assert_eq!(config.node_name, "from-file");
    assert_eq!(config.listen.to_string(), "127.0.0.8:8000", "the flag wins");
    let options = config.node_options().unwrap();
    assert_eq!(options.cluster.initial_members.len(), 1);
    assert!(!options.gateway.keys.is_empty(), "the keys from the file");
    assert!(options.cluster.tls.is_some());
    assert!(!options.actors.local_model_pool, "no `models` role");
}

#[test]
fn settings_that_only_fail_together_are_checked() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["--variants", "a:1,a:2"],
            "--variants: variant `a` is listed twice",
        ),
        (
            &["--variants", "a:0"],
            "--variants: at least one variant needs a share above 0",
        ),
        (
            &["--tls-cert", "n.pem"],
            "needs all of --tls-cert, --tls-key and --tls-ca",
        ),
        (&["--roles", "models", "--tls-ca", "ca.pem"], "needs all of"),
        (
            &["--catalog", "file"],
            "--catalog file needs --catalog-file",
        ),
        (
            &[
                "--node-name",
                "node-9",
                "--initial-members",
                "node-1=127.0.0.1:7280",
            ],
            "--initial-members must include this node",
        ),
    ];
    for (flags, fragment) in cases {
        let sources = Sources {
            file: None,
            env: &[],
            flags,
        };
        let config = load(&sources).unwrap_or_else(|error| panic!("{flags:?}: {error}"));
        let error = config.node_options().expect_err("refused").to_string();
        assert!(error.contains(fragment), "{flags:?}: {error}");
    }
}

#[test]
fn initial_members_parse_or_name_the_problem() {
    let cases = [
        ("node-1=127.0.0.1:7280", Ok(("node-1", "127.0.0.1:7280"))),
        ("node-1", Err("is not NAME=ADDR")),
        ("=127.0.0.1:7280", Err("empty node name")),
        ("node-1=localhost", Err("is not an address")),
    ];
    for (text, expected) in cases {
        let parsed = Member::parse(text).map(|member| (member.0.name, member.0.addr.to_string()));
        match (parsed, expected) {
            (Ok((name, addr)), Ok((want_name, want_addr))) => {
                assert_eq!(
                    (name.as_str(), addr.as_str()),
                    (want_name, want_addr),
                    "{text}"
                )
            }
            (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{text}: {error}"),
            (outcome, _) => panic!("{text}: unexpected {outcome:?}"),
        }
    }
}

#[test]
fn the_help_names_each_flags_default_environment_variable_and_file_key() {
    let mut command = super::help_with_sources(ServeCli::command());
    let help = command.render_help().to_string();
    for fragment in [
        "[default: 127.0.0.1:8080] [env: INKLING_LISTEN] [config key: listen]",
        "[default: 4] [env: INKLING_SHARDS] [config key: shards]",
        "[default: 3] [env: INKLING_INDEX_REPLICAS] [config key: index_replicas]",
        "[default: gateway,sessions,models,index] [env: INKLING_ROLES] [config key: roles]",
        "[env: INKLING_CLUSTER_SECRET_FILE] [config key: cluster_secret_file]",
    ] {
        assert!(help.contains(fragment), "{fragment:?} not in:\n{help}");
    }
}

/// The example configuration in docs/ names every setting and loads to the defaults.
#[test]
fn the_example_configuration_names_every_setting_at_its_default() {
    let example = include_str!("../../../../docs/inkling.toml");
    let defaults = serde_json::to_value(ServeConfig::default()).unwrap();
    for key in defaults.as_object().unwrap().keys() {
        assert!(
            example.contains(&format!("{key} = ")),
            "docs/inkling.toml lacks {key}"
        );
    }
    let loaded = load(&given(Some(example), &[], &[])).unwrap();
    assert_eq!(serde_json::to_value(loaded).unwrap(), defaults);
}

/// Each case: the taxonomy file's text (none: no such file), and the error (a fragment)
/// or, for a good file, an alias it must give 手机.
#[test]
fn a_taxonomy_file_is_read_or_refused_naming_the_problem() {
    let cases: [(Option<&str>, Result<&str, &str>); 6] = [
        (
            Some(r#"{"aliases": {"手机": ["handsets"]}, "brand_aliases": {"Xiaomi": ["小米"]}}"#),
            Ok("handsets"),
        ),
        (Some(r#"{"aliases": {}}"#), Ok("")),
        (None, Err("cannot read the taxonomy file")),
        (
            Some(r#"{"aliases": {"手机": ["handsets"]"#),
            Err("is not valid"),
        ),
        (
            Some(r#"{"aliases": {}, "synonyms": {}}"#),
            Err("unknown field `synonyms`"),
        ),
        (
            Some(r#"{"aliases": {"手机": ["  "]}}"#),
            Err("aliases.手机: blank names are not allowed"),
        ),
    ];
    for (text, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("taxonomy.json");
        if let Some(text) = text {
            std::fs::write(&path, text).unwrap();
        }
        let flags = ["--taxonomy", path.to_str().unwrap()];
        let config = load(&given(None, &[], &flags)).unwrap();
        match (config.node_options(), expected) {
            (Ok(options), Ok(alias)) => {
                let aliases = options.taxonomy.aliases_of("手机");
                assert_eq!(
                    aliases.first().map_or("", String::as_str),
                    alias,
                    "{text:?}"
                );
            }
            (Err(error), Err(fragment)) => {
                let error = format!("{error:#}");
                assert!(error.contains(fragment), "{text:?}: {error}");
            }
            (outcome, _) => panic!("{text:?}: {:?}", outcome.map(|o| o.taxonomy)),
        }
    }
    let bundled = load(&given(None, &[], &[]))
        .unwrap()
        .node_options()
        .unwrap();
    assert!(
        bundled
            .taxonomy
            .aliases_of("手机")
            .contains(&"mobile phones".to_string())
    );
}
