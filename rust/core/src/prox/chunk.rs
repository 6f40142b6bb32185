//! Chunk-stage input: every line numbered with its document-wide index (`[000]`, `[001]`, …,
//! wider past 999, no space after the bracket), lines packed greedily into chunks by token cost,
//! each chunk wrapped in `[doc]` … `[/doc]` and rendered with the chat template. Per-chunk model
//! outputs are stripped of spaces and joined with `\n` into the document program.

use rayon::prelude::*;
use tokenizers::Tokenizer;

use super::count::LineCounter;
use super::prompt::PromptTemplate;
use crate::Result;

/// How documents are cut into chunks and wrapped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChunkOptions {
    /// Token budget of a chunk (reference: 1500). A chunk may reach it exactly; a line that
    /// alone costs more becomes a chunk of its own.
    pub max_tokens: usize,
    /// Minimum digits of the line number (reference: 3).
    pub number_width: usize,
    /// Count special tokens (the BOS) in each line's cost, as `tokenizer.encode(line)` does.
    pub add_special_tokens: bool,
    /// Text before a chunk (reference: `[doc]\n`).
    pub open: String,
    /// Text after a chunk (reference: `\n[/doc]`).
    pub close: String,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 1500,
            number_width: 3,
            add_special_tokens: true,
            open: "[doc]\n".into(),
            close: "\n[/doc]".into(),
        }
    }
}

impl crate::options::Options for ChunkOptions {
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        use crate::options::check_range;
        check_range("max_tokens", self.max_tokens, Some(1), Some(1 << 24))?;
        check_range("number_width", self.number_width, Some(1), Some(20))
    }
}

/// `[{index:0width}]{line}`.
pub fn number_line(index: usize, line: &str, width: usize) -> String {
    format!("[{index:0width$}]{line}")
}

/// The numbered chunk bodies of one document (before wrapping). Lines are split on `\n` only.
/// Builds a [`LineCounter`] for this one call: for many documents use [`split_chunks_with`] or
/// [`split_chunks_batch`].
pub fn split_chunks(tok: &Tokenizer, text: &str, opts: &ChunkOptions) -> Result<Vec<String>> {
    split_chunks_with(&LineCounter::new(tok), text, opts)
}

/// [`split_chunks`] with a counter built once for many documents. A line's cost is exactly
/// `len(tokenizer.encode(numbered_line, add_special_tokens))`.
pub fn split_chunks_with(
    counter: &LineCounter<'_>,
    text: &str,
    opts: &ChunkOptions,
) -> Result<Vec<String>> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut has_lines = false;
    let mut used = 0usize;
    for (i, line) in text.split('\n').enumerate() {
        let numbered = number_line(i, line, opts.number_width);
        let cost = counter.count(&numbered, opts.add_special_tokens)?;
        if used + cost <= opts.max_tokens {
            if has_lines {
                current.push('\n');
            }
            current.push_str(&numbered);
            has_lines = true;
            used += cost;
            continue;
        }
        if has_lines {
            chunks.push(std::mem::take(&mut current));
        }
        current = numbered;
        has_lines = true;
        used = cost;
        if cost > opts.max_tokens {
            chunks.push(std::mem::take(&mut current));
            has_lines = false;
            used = 0;
        }
    }
    if has_lines {
        chunks.push(current);
    }
    Ok(chunks)
}

/// The chunk-stage prompts of one document: each chunk wrapped and rendered. An empty document
/// has none (the reference skips it).
pub fn chunk_prompts(
    tok: &Tokenizer,
    text: &str,
    opts: &ChunkOptions,
    template: &PromptTemplate,
) -> Result<Vec<String>> {
    chunk_prompts_with(&LineCounter::new(tok), text, opts, template)
}

/// [`chunk_prompts`] with a counter built once for many documents.
pub fn chunk_prompts_with(
    counter: &LineCounter<'_>,
    text: &str,
    opts: &ChunkOptions,
    template: &PromptTemplate,
) -> Result<Vec<String>> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(split_chunks_with(counter, text, opts)?
        .iter()
        .map(|c| template.render(&format!("{}{c}{}", opts.open, opts.close)))
        .collect())
}

/// [`split_chunks`] over many documents, in parallel on the current rayon pool.
pub fn split_chunks_batch(
    tok: &Tokenizer,
    texts: &[&str],
    opts: &ChunkOptions,
) -> Result<Vec<Vec<String>>> {
    let counter = LineCounter::new(tok);
    texts
        .par_iter()
        .with_min_len(8)
        .map(|t| split_chunks_with(&counter, t, opts))
        .collect()
}

/// The document program from its per-chunk model outputs: each stripped of spaces, joined with
/// `\n`, in chunk order.
pub fn join_programs<S: AsRef<str>>(outputs: &[S]) -> String {
    let parts: Vec<&str> = outputs
        .iter()
        .map(|o| o.as_ref().trim_matches(' '))
        .collect();
    parts.join("\n")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    use tokenizers::processors::template::TemplateProcessing;

    /// A tokenizer with one token per whitespace-separated word, plus a BOS with special tokens.
    pub(crate) fn word_tokenizer() -> Tokenizer {
        let vocab = [("<unk>".to_string(), 0u32), ("<s>".to_string(), 1u32)]
            .into_iter()
            .collect();
        let model = WordLevel::builder()
            .vocab(vocab)
            .unk_token("<unk>".into())
            .build()
            .expect("model");
        let mut tok = Tokenizer::new(model);
        tok.with_pre_tokenizer(Some(WhitespaceSplit));
        let post = TemplateProcessing::builder()
            .try_single("<s> $A")
            .expect("template")
            .special_tokens(vec![("<s>", 1)])
            .build()
            .expect("post");
        tok.with_post_processor(Some(post));
        tok
    }

    fn opts(max: usize) -> ChunkOptions {
        ChunkOptions {
            max_tokens: max,
            ..ChunkOptions::default()
        }
    }

    #[test]
    fn numbering_is_global_and_widens() {
        assert_eq!(number_line(0, "x", 3), "[000]x");
        assert_eq!(number_line(7, "", 3), "[007]");
        assert_eq!(number_line(1234, " y", 3), "[1234] y");
        let tok = word_tokenizer();
        // Each line costs BOS + its words; "[000]a b" is two words: 3 tokens.
        let text = "a b\nc d\ne f\ng";
        let chunks = split_chunks(&tok, text, &opts(6)).expect("chunks");
        assert_eq!(chunks, vec!["[000]a b\n[001]c d", "[002]e f\n[003]g"]);
    }

    #[test]
    fn the_budget_is_inclusive_and_long_lines_stand_alone() {
        let tok = word_tokenizer();
        // Costs: 3, 3, 8, 2, 2.
        let text = "a b\nc d\n1 2 3 4 5 6 7\nx\ny";
        assert_eq!(
            split_chunks(&tok, text, &opts(6)).expect("chunks"),
            vec!["[000]a b\n[001]c d", "[002]1 2 3 4 5 6 7", "[003]x\n[004]y"]
        );
        // A long first line.
        assert_eq!(
            split_chunks(&tok, "1 2 3 4 5 6 7\nx", &opts(6)).expect("chunks"),
            vec!["[000]1 2 3 4 5 6 7", "[001]x"]
        );
        assert_eq!(
            split_chunks(&tok, "", &opts(6)).expect("chunks"),
            vec!["[000]"]
        );
        let t = PromptTemplate::llama2();
        assert!(chunk_prompts(&tok, "", &opts(6), &t).expect("p").is_empty());
        let p = chunk_prompts(&tok, "a", &opts(6), &t).expect("p");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].ends_with("\n\n[doc]\n[000]a\n[/doc] [/INST]"),
            "{}",
            p[0]
        );
    }

    #[test]
    fn programs_join_stripped_of_spaces() {
        assert_eq!(
            join_programs(&[
                "  remove_lines(line_start=0, line_end=0)\n ",
                " keep_chunk() "
            ]),
            "remove_lines(line_start=0, line_end=0)\n\nkeep_chunk()"
        );
    }
}
