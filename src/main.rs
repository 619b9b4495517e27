//! The `tp` binary; all of its logic lives in `turboprop-cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    turboprop_cli::main()
}
