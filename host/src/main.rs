//! The `cordon` command. Parsing, running and exit codes live in `cordon_host::cli`.

fn main() -> std::process::ExitCode {
    cordon_host::cli::main()
}
