fn main() -> std::process::ExitCode {
    inkling_cluster::cli::main()
}
