//! The `tamis` binary.

// mimalloc: the tokenizers crate and the record pipelines allocate many small strings per line;
// glibc's malloc was a fifth of the chunking profile (benchmarks/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the bundled mimalloc (v3 `mimalloc.h`; the -sys crate does not
/// name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Give freed memory back at once instead of after 10 ms: near dedup's in-memory mode peaked
    // at 221 bytes per document with the delay and 150 without (benchmarks/RESULTS.md).
    // SAFETY: setting a documented mimalloc option; no allocation state is touched.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    std::process::exit(tamis_cli::run(std::env::args_os()));
}
