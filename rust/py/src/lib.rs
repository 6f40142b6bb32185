//! Python bindings (`tamis._core`): one file per core capability, holding only conversion,
//! GIL release and error mapping; every algorithm, default and check lives in tamis-core.
//! Options cross as the JSON of their core types (Python's dataclasses make it).

// mimalloc for Rust's allocations in the extension (Python keeps its own allocator): the
// tokenizers crate and the record pipelines allocate many small strings per line.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod arrow;
mod dedup;
mod embed;
mod errors;
mod fasttext;
mod index;
mod mix;
mod near;
mod prox;
mod refine;
mod substring;
mod tokenize;
mod vocab;

use pyo3::prelude::*;

/// The compiled part of tamis.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("TamisError", py.get_type::<errors::TamisError>())?;
    m.add("ConfigError", py.get_type::<errors::ConfigError>())?;
    m.add(
        "RECORD_ERROR_KINDS",
        tamis_core::RecordError::SLUGS.to_vec(),
    )?;
    m.add(
        "TOKENIZER_ERROR_KINDS",
        tamis_core::TokenizerError::SLUGS.to_vec(),
    )?;
    m.add(
        "EMBED_ERROR_KINDS",
        tamis_core::embed::EmbedError::SLUGS.to_vec(),
    )?;
    m.add_class::<arrow::U64Matrix>()?;
    m.add_class::<fasttext::FastText>()?;
    m.add_class::<fasttext::LanguageIdentifier>()?;
    m.add_class::<dedup::ExactSignatureWriter>()?;
    m.add_class::<dedup::ExactKeepTable>()?;
    m.add_class::<dedup::LineSignatureWriter>()?;
    m.add_class::<dedup::LineKeepTable>()?;
    m.add_class::<near::NearSignatureWriter>()?;
    m.add_class::<near::NearPathFilter>()?;
    m.add_class::<refine::Batch>()?;
    m.add_class::<vocab::TextBatches>()?;
    m.add_class::<tokenize::TextShardWriter>()?;
    m.add_function(wrap_pyfunction!(refine::main, m)?)?;
    m.add_function(wrap_pyfunction!(refine::stage_types, m)?)?;
    m.add_function(wrap_pyfunction!(refine::option_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(refine::check_options, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_config, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_config_file, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_quick_config, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_check, m)?)?;
    m.add_function(wrap_pyfunction!(refine::read_toml, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_run, m)?)?;
    m.add_function(wrap_pyfunction!(refine::refine_summary, m)?)?;
    m.add_function(wrap_pyfunction!(refine::run_stages, m)?)?;
    m.add_function(wrap_pyfunction!(mix::mix, m)?)?;
    m.add_function(wrap_pyfunction!(mix::mix_to_shards, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize::tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::dedup_exact, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_build, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_add, m)?)?;
    m.add_function(wrap_pyfunction!(index::index_info_json, m)?)?;
    m.add_function(wrap_pyfunction!(index::decontaminate, m)?)?;
    m.add_class::<index::NgramIndexes>()?;
    m.add_function(wrap_pyfunction!(dedup::dedup_lines, m)?)?;
    m.add_function(wrap_pyfunction!(substring::dedup_substring, m)?)?;
    m.add_function(wrap_pyfunction!(substring::substring_find, m)?)?;
    m.add_class::<substring::SubstringSequenceWriter>()?;
    m.add_class::<substring::SubstringPathCutter>()?;
    m.add_function(wrap_pyfunction!(dedup::keep_field, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::hash_texts, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::exact_keep_mask_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(dedup::line_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_bands_rows, m)?)?;
    m.add_function(wrap_pyfunction!(near::dedup_near, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_signatures, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_buckets, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_cluster, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_filter, m)?)?;
    m.add_function(wrap_pyfunction!(near::minhash, m)?)?;
    m.add_function(wrap_pyfunction!(near::minhash_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_clusters_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(near::near_keep_mask_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(near::shingle_hashes, m)?)?;
    m.add_function(wrap_pyfunction!(near::shingle_words, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_execute_list, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_execute_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_explain, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_chunks, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_doc_prompts, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_render, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_outcomes, m)?)?;
    m.add_function(wrap_pyfunction!(prox::prox_token_counts, m)?)?;
    m.add_class::<prox::ProxPromptItems>()?;
    m.add_function(wrap_pyfunction!(prox::prox_prompt_items, m)?)?;
    m.add_function(wrap_pyfunction!(vocab::vocab_extend, m)?)?;
    m.add_function(wrap_pyfunction!(vocab::vocab_stats, m)?)?;
    m.add_function(wrap_pyfunction!(vocab::token_counts_arrow, m)?)?;
    m.add_function(wrap_pyfunction!(embed::embed_init_checkpoint, m)?)?;
    m.add_function(wrap_pyfunction!(embed::embed_rows, m)?)?;
    Ok(())
}
