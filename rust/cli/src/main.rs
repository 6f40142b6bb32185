//! The `tamis` binary.

// mimalloc: the tokenizers crate and the record pipelines allocate many small strings per line;
// glibc's malloc was a fifth of the chunking profile (benchmarks/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the bundled mimalloc (v3 `mimalloc.h`; the -sys crate does not
/// name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Freed memory goes back to the system after 10 ms (mimalloc's default, set here so that a
    // newer default cannot change it silently). Measured on near dedup (benchmarks/RESULTS.md):
    // 0 ms kept the in-memory mode at 153 bytes per document but cost a quarter of a whole-corpus
    // run in madvise calls and page faults on recycled batch buffers; 10 ms gives 173 bytes per
    // document (goal: 200) and the run 17% faster; 100 ms gave 192.
    // `decontaminate` holds no state that grows: its freed batch buffers come back within a
    // second, so 1 s saves the page faults (measured on 1.1 GB: 9.4 s instead of 10.3 on one
    // thread, peak 205 MB instead of 162; RESULTS.md).
    // `vocab` builds one large state and frees it piece by piece while learning: 1 s saves the
    // kernel zeroing pages handed back and asked for again (Dutch, +4,000 tokens, three runs
    // each: 1.2 MB 0.38-0.43 s instead of 0.46-0.57 with `--target all`, 47 MB 3.07-3.09 s
    // instead of 3.29-3.35; `auto` 3.78-4.04 instead of 4.02-4.63; RESULTS.md).
    // MIMALLOC_PURGE_DELAY in the environment (read by mimalloc itself) takes precedence.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let delay = match subcommand(&args) {
            Some(c) if c == "decontaminate" || c == "vocab" => 1000,
            _ => 10,
        };
        // SAFETY: setting a documented mimalloc option; no allocation state is touched.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay) };
    }
    // `vocab` allocates a few hundred MB in small pieces over half a second: with transparent
    // huge pages each first touch of 2 MB may wait for the kernel to compact memory and zero the
    // page (measured, Dutch auto +4,000 on 1.2 MB, five runs each: 0.56-0.61 s without, 0.52-0.76
    // s with, the slow runs all in the kernel). mimalloc's own switch (MIMALLOC_ALLOW_THP=0) is
    // read before `main`; this is what it does, and the variable still decides when it is set.
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none()
        && subcommand(&args).is_some_and(|c| c == "vocab")
    {
        let (on, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
        // SAFETY: a process flag; no memory is touched. A failure leaves THP on, which is only
        // slower.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, on, zero, zero, zero) };
    }
    std::process::exit(tamis_cli::run(args));
}

/// The subcommand: the first argument that is neither a global flag nor `--threads`' value.
fn subcommand(args: &[std::ffi::OsString]) -> Option<&std::ffi::OsString> {
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        if a == "--threads" {
            it.next();
        } else if !a.to_string_lossy().starts_with('-') {
            return Some(a);
        }
    }
    None
}
