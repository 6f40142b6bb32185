#![no_main]
// The first byte picks gzip or zstd: truncated and corrupt archives, bombs, multi-member files.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&pick, rest)) = data.split_first() {
        let name = if pick % 2 == 0 { "in.jsonl.gz" } else { "in.jsonl.zst" };
        tamis_fuzz::dedup_over(name, rest);
    }
});
