//! The `tamis` binary.

// mimalloc: the tokenizers crate and the record pipelines allocate many small strings per line;
// glibc's malloc was a fifth of the chunking profile (benchmarks/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(tamis_cli::run(std::env::args_os()));
}
