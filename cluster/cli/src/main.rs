/// Requests allocate many small, short-lived objects on several threads at once, the
/// pattern mimalloc serves far better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    inkling_cli::main()
}
