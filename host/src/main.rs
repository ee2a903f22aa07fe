//! The `cordon` command. Parsing, running and exit codes live in `cordon_host::cli`.

/// Used stores are dropped on the runtime's spare-instance thread, not on the thread that
/// allocated most of them; glibc's malloc takes the allocating thread's arena lock for each such
/// free, mimalloc does not. The library leaves the choice to the program that embeds it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cordon_host::cli::main()
}
