//! The `tp` binary; all of its logic lives in `turboprop-cli`.

fn main() -> std::process::ExitCode {
    turboprop_cli::main()
}
