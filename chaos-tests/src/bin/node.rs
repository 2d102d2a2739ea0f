//! The `inkling` command, built inside this package so its tests can start real node
//! processes through `CARGO_BIN_EXE_inkling-node` without relying on build order.

//!
//! Unlike the shipped binary it reads fail-points from `FAILPOINTS` (`name=action;...`),
//! which take effect when the tests are built with `inkling-actors/failpoints`, as CI
//! builds them, and, when `INKLING_FAILPOINTS_FILE` names a file, re-reads fail-points
//! from that file every 100 ms: the chaos nemesis arms a fault (a full disk) in a running
//! node and disarms it again without restarting it.

use std::collections::BTreeSet;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let _failpoints = fail::FailScenario::setup();
    if let Some(path) = std::env::var_os("INKLING_FAILPOINTS_FILE") {
        std::thread::spawn(move || watch_failpoints(path.into()));
    }
    inkling_cli::main()
}

/// Applies the file's `name=action;...` whenever it changes; a name that leaves the file is
/// disarmed. A missing file arms nothing.
fn watch_failpoints(path: std::path::PathBuf) {
    let mut applied = String::new();
    let mut armed: BTreeSet<String> = BTreeSet::new();
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text != applied {
            let mut now = BTreeSet::new();
            for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
                let Some((name, action)) = entry.split_once('=') else {
                    eprintln!("{}: `{entry}` is not name=action", path.display());
                    continue;
                };
                match fail::cfg(name.trim(), action.trim()) {
                    Ok(()) => {
                        now.insert(name.trim().to_string());
                    }
                    Err(error) => eprintln!("{}: {name}: {error}", path.display()),
                }
            }
            for gone in armed.difference(&now) {
                fail::remove(gone);
            }
            armed = now;
            applied = text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
