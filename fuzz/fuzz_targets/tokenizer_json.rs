#![no_main]
use tamis_core::vocab::TokenizerFile;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = TokenizerFile::from_json("fuzz.json", s);
    }
});
