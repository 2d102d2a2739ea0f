//! The `inkling` command, built inside this package so its tests can start real node
//! processes through `CARGO_BIN_EXE_inkling-node` without relying on build order.

fn main() -> std::process::ExitCode {
    inkling_cli::main()
}
