//! The `tamis` binary.

fn main() {
    std::process::exit(tamis_cli::run(std::env::args_os()));
}
