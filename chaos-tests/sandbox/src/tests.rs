//! The sandbox against stand-in nodes: shell scripts that print the "listening" line (or
//! not) and then wait, so every signal and wait is checked without building `inkling`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// A script that writes its arguments to `ARGS_FILE`, prints `listening` (when given) and
/// then runs `tail`: what a node does between starting and being stopped.
fn stand_in(folder: &Path, listening: Option<&str>, tail: &str) -> PathBuf {
    let path = folder.join(format!("node-{}.sh", tail.len()));
    let print = listening
        .map(|url| format!("echo 'inkling listening on {url}'\n"))
        .unwrap_or_default();
    let script = format!("#!/bin/sh\necho \"$@\" >> \"$ARGS_FILE\"\n{print}{tail}\n");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn config(binary: PathBuf, args_file: &Path) -> SandboxConfig {
    SandboxConfig {
        env: vec![("ARGS_FILE".into(), args_file.display().to_string())],
        logs: Logs::Files,
        startup_timeout: Duration::from_secs(5),
        stop_timeout: Duration::from_secs(5),
        ..SandboxConfig::new(binary)
    }
}

/// Each case: the nodes' specs, and the command line node 2 gets (after `serve`, with
/// `DATA` for the sandbox's folder).
#[test]
fn each_way_of_joining_has_its_command_line() {
    let advertised = NodeSpec {
        advertise: Some("127.9.0.2:7000".into()),
        flags: vec!["--roles".into(), "index".into()],
        ..NodeSpec::founder("127.9.1.2:7000")
    };
    let joiner = NodeSpec {
        joining: Joining::Seeds(vec![0, 1]),
        ..NodeSpec::founder("127.0.9.3:7000")
    };
    let cases: Vec<(Vec<NodeSpec>, usize, &str)> = vec![
        (
            vec![NodeSpec::founder("127.0.9.1:7000"), advertised],
            1,
            "--listen 127.9.1.2:7000 --advertise 127.9.0.2:7000 --node-name node-2 --api-keys KEYS \
             --data-dir DATA/node-2 --initial-members node-1=127.0.9.1:7002,node-2=127.9.0.2:7000 \
             --catalog none --roles index",
        ),
        (
            vec![
                NodeSpec::founder("127.0.9.1:7000"),
                NodeSpec::founder("127.0.9.2:7000"),
                joiner,
            ],
            2,
            "--listen 127.0.9.3:7000 --node-name node-3 --api-keys KEYS --data-dir DATA/node-3 \
             --seeds 127.0.9.1:7002,127.0.9.2:7002 --catalog none",
        ),
        (
            vec![NodeSpec::alone("127.0.0.1:0")],
            0,
            "--listen 127.0.0.1:0 --node-name node-1 --api-keys KEYS --data-dir DATA/node-1 --catalog none",
        ),
    ];
    for (specs, index, expected) in cases {
        let mut sandbox = Sandbox::new(SandboxConfig {
            flags: vec!["--catalog".into(), "none".into()],
            ..SandboxConfig::new("inkling")
        })
        .unwrap();
        let keys = sandbox.credentials().api_keys_flag();
        for spec in specs {
            sandbox.add(spec);
        }
        let folder = sandbox.folder().display().to_string();
        let line = sandbox
            .command_line(index)
            .join(" ")
            .replace(&folder, "DATA")
            .replace(&keys, "KEYS");
        let expected: Vec<&str> = expected.split_whitespace().collect();
        assert_eq!(line, format!("serve {}", expected.join(" ")));
    }
}

#[test]
fn nodes_start_stop_pause_and_restart_on_their_folders() {
    let scratch = tempfile::tempdir().unwrap();
    let args_file = scratch.path().join("args");
    let binary = stand_in(
        scratch.path(),
        Some("http://127.0.0.1:4321"),
        "exec sleep 60",
    );
    let specs = vec![
        NodeSpec::founder("127.0.0.1:0"),
        NodeSpec::founder("127.0.0.1:0"),
    ];
    let mut sandbox = Sandbox::start(config(binary, &args_file), specs).unwrap();
    assert_eq!(sandbox.running(), [0, 1]);
    assert_eq!(
        sandbox.url(1),
        "http://127.0.0.1:4321",
        "learnt from the line"
    );
    let started = std::fs::read_to_string(&args_file).unwrap();
    assert_eq!(started.lines().count(), 2, "{started}");

    sandbox.pause(0).unwrap();
    assert!(sandbox.is_paused(0));
    assert!(sandbox.reap().is_empty(), "a paused node has not exited");
    sandbox.resume(0).unwrap();
    sandbox.kill(0);
    assert_eq!(sandbox.running(), [1]);
    sandbox.stop(1).unwrap();
    assert!(sandbox.running().is_empty());

    sandbox.restart(0).unwrap();
    assert_eq!(sandbox.running(), [0]);
    let restarted = std::fs::read_to_string(&args_file).unwrap();
    let lines: Vec<&str> = restarted.lines().collect();
    // The two nodes started at once, so either may have written its line first.
    let first_start = lines[..2]
        .iter()
        .find(|line| line.contains("--node-name node-1 "))
        .expect("node-1 started");
    assert_eq!(
        lines[2], *first_start,
        "a restart runs the same command line"
    );
    let log = std::fs::read_to_string(sandbox.log_path(0)).unwrap();
    assert_eq!(log.matches("inkling listening on").count(), 2, "{log}");
    sandbox.stop_all().unwrap();
    assert!(sandbox.running().is_empty());
}

#[test]
fn a_node_that_exits_or_never_listens_fails_its_start_with_the_reason() {
    let scratch = tempfile::tempdir().unwrap();
    let args_file = scratch.path().join("args");
    // (what the stand-in does, a fragment of the error)
    let cases = [
        (
            stand_in(scratch.path(), None, "exit 3"),
            "exited (exit status: 3)",
        ),
        (
            stand_in(scratch.path(), None, "exec sleep 60"),
            "did not start listening",
        ),
    ];
    for (binary, fragment) in cases {
        let mut config = config(binary, &args_file);
        config.startup_timeout = Duration::from_millis(300);
        let error = Sandbox::start(config, vec![NodeSpec::alone("127.0.0.1:0")])
            .err()
            .expect("the start fails")
            .to_string();
        assert!(error.contains(fragment), "{error}");
        assert!(error.contains("node-1.log"), "names the log: {error}");
    }
}

#[test]
fn a_node_that_exits_on_its_own_is_reaped_and_waited_for() {
    let scratch = tempfile::tempdir().unwrap();
    let args_file = scratch.path().join("args");
    let binary = stand_in(scratch.path(), Some("http://127.0.0.1:1"), "read line");
    let mut sandbox =
        Sandbox::start(config(binary, &args_file), vec![NodeSpec::alone("x")]).unwrap();
    // `read` on a closed stdin returns at once: the node exits by itself.
    wait_until("the stand-in to exit", Duration::from_secs(5), || {
        (!sandbox.reap().is_empty()).then_some(())
    })
    .unwrap();
    assert!(sandbox.running().is_empty());

    let binary = stand_in(scratch.path(), Some("http://127.0.0.1:1"), "exec sleep 60");
    let mut sandbox =
        Sandbox::start(config(binary, &args_file), vec![NodeSpec::alone("x")]).unwrap();
    let exited = sandbox.wait_exit(0, Duration::from_millis(200)).unwrap();
    assert!(!exited, "killed at the deadline");
    assert!(sandbox.running().is_empty());
}

#[test]
fn waiting_polls_until_the_probe_answers_or_the_deadline() {
    let mut polls = 0;
    let answer = wait_until("three polls", Duration::from_secs(5), || {
        polls += 1;
        (polls == 3).then_some(polls)
    });
    assert_eq!(answer.unwrap(), 3);
    let error = wait_until("nothing", Duration::from_millis(120), || None::<()>).unwrap_err();
    assert!(error.to_string().contains("waiting for nothing"), "{error}");
}

#[test]
fn free_ports_are_bindable() {
    let ip = loopback(0, 1);
    let port = free_port_triple(ip).unwrap();
    for offset in 0..=PEER_PORT_OFFSET {
        std::net::TcpListener::bind((ip, port + offset)).unwrap();
    }
    assert_ne!(free_port(ip).unwrap(), 0);
}
