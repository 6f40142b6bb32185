#![no_main]
// Text and program separated by the first NUL; both modes, document and chunk programs.
use tamis_core::prox::{execute_doc, explain_chunk, Acceptance, Mode};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let (text, program) = s.split_once('\0').unwrap_or((s, "remove_lines(line_start=0, line_end=1)"));
    for mode in [Mode::Compat, Mode::Strict] {
        let _ = execute_doc(text, program, mode);
        let e = explain_chunk(text, program, mode, &Acceptance::default());
        // The growth cap (docs/prox.md) holds whatever the program.
        assert!(e.text.len() <= (text.len() * 16).max(1 << 20));
    }
});
