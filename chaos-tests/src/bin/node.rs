//! The `inkling` command, built inside this package so its tests can start real node
//! processes through `CARGO_BIN_EXE_inkling-node` without relying on build order.

//!
//! Unlike the shipped binary it reads fail-points from `FAILPOINTS` (`name=action;...`),
//! which take effect when the tests are built with `inkling-actors/failpoints`, as CI
//! builds them.

fn main() -> std::process::ExitCode {
    let _failpoints = fail::FailScenario::setup();
    inkling_cli::main()
}
