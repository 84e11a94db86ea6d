//! The `pdm-server` binary; everything lives in the library.

fn main() -> std::process::ExitCode {
    pdm_server::cli::main()
}
