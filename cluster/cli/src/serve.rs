//! `inkling serve` (also `inkling node`): a node's settings, read from defaults, a TOML
//! file, the environment and flags through figment, and turned into `NodeOptions`.

mod config;
mod flags;
mod sources;
#[cfg(test)]
mod tests;
mod values;

pub use config::ServeConfig;
pub use flags::ServeFlags;

use sources::{ENV_KEYS, env_name};

/// Runs a node until it is stopped.
pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    inkling_node::run(config.node_options()?).await
}

/// `serve`'s command with each setting's default, environment variable and config-file
/// key added to its flag's help: the flags carry no defaults of their own (an unset flag
/// must not hide the file or the environment), so clap cannot show them.
pub fn help_with_sources(command: clap::Command) -> clap::Command {
    let defaults = serde_json::to_value(ServeConfig::default()).unwrap_or_default();
    command.mut_args(|arg| {
        let key = arg.get_id().as_str().to_string();
        let Some(default) = defaults.get(&key) else {
            return arg;
        };
        let mut sources = Vec::new();
        if let Some(default) = default_text(default) {
            sources.push(format!("[default: {default}]"));
        }
        if ENV_KEYS.contains(&key.as_str()) {
            sources.push(format!("[env: {}]", env_name(&key)));
        }
        sources.push(format!("[config key: {key}]"));
        let sources = sources.join(" ");
        let help = match arg.get_help() {
            Some(help) => format!("{help} {sources}"),
            None => sources,
        };
        arg.help(help)
    })
}

fn default_text(default: &serde_json::Value) -> Option<String> {
    match default {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Array(items) if !items.is_empty() => Some(
            items
                .iter()
                .filter_map(default_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
        _ => None,
    }
}
