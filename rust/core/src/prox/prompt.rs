//! Prompt formatting for the refining models: the Llama-2 chat template the ProX maintainers
//! confirmed they used, hard-coded (the released chunk model ships no chat template), and the
//! document-stage prompt right-truncated at 2000 tokens.

use std::path::Path;

use tokenizers::Tokenizer;

use super::pyrt::py_strip;
use crate::{Error, Result};

/// The system prompt of both ProX stages.
pub const LLAMA2_SYSTEM: &str = "You are a helpful, respectful and honest assistant.";

/// A chat template: `prefix + content + suffix`, where `content` has `{system}` and `{user}`
/// filled in and, when `strip_content` is set, is stripped of Python whitespace at both ends
/// (Llama-2's template strips the system block and user message together, so a trailing
/// newline of the user message disappears).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptTemplate {
    /// Text before the content (Llama-2: `<s>[INST] `).
    pub prefix: String,
    /// The content, with `{system}` and `{user}` placeholders.
    pub content: String,
    /// Text after the content (Llama-2: ` [/INST]`).
    pub suffix: String,
    /// The system prompt.
    pub system: String,
    /// Strip the filled-in content.
    pub strip_content: bool,
}

impl Default for PromptTemplate {
    fn default() -> Self {
        Self::llama2()
    }
}

impl crate::options::Options for PromptTemplate {
    fn validate(&self) -> std::result::Result<(), crate::options::OptionError> {
        Ok(())
    }
}

impl PromptTemplate {
    /// Llama-2 chat with the ProX system prompt:
    /// `<s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]`.
    pub fn llama2() -> Self {
        PromptTemplate {
            prefix: "<s>[INST] ".into(),
            content: "<<SYS>>\n{system}\n<</SYS>>\n\n{user}".into(),
            suffix: " [/INST]".into(),
            system: LLAMA2_SYSTEM.into(),
            strip_content: true,
        }
    }

    /// No template: the user message as it is.
    pub fn plain() -> Self {
        PromptTemplate {
            prefix: String::new(),
            content: "{user}".into(),
            suffix: String::new(),
            system: String::new(),
            strip_content: false,
        }
    }

    /// The prompt for one user message. Placeholders are filled in one pass, so braces in the
    /// message are left alone.
    pub fn render(&self, user: &str) -> String {
        let mut content =
            String::with_capacity(self.content.len() + user.len() + self.system.len());
        let mut rest = self.content.as_str();
        while let Some(i) = rest.find('{') {
            content.push_str(&rest[..i]);
            let tail = &rest[i..];
            if let Some(t) = tail.strip_prefix("{user}") {
                content.push_str(user);
                rest = t;
            } else if let Some(t) = tail.strip_prefix("{system}") {
                content.push_str(&self.system);
                rest = t;
            } else {
                content.push('{');
                rest = &tail[1..];
            }
        }
        content.push_str(rest);
        let body = if self.strip_content {
            py_strip(&content)
        } else {
            &content
        };
        let mut out = String::with_capacity(self.prefix.len() + body.len() + self.suffix.len());
        out.push_str(&self.prefix);
        out.push_str(body);
        out.push_str(&self.suffix);
        out
    }
}

/// Load a `tokenizer.json` for counting and encoding: truncation and padding configured in the
/// file are turned off, as `transformers` does for `tokenizer.encode(text)`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let mut tok = Tokenizer::from_file(path).map_err(|e| {
        Error::Config(format!(
            "{}: cannot load the tokenizer: {e}",
            path.display()
        ))
    })?;
    tok.with_truncation(None)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    tok.with_padding(None);
    Ok(tok)
}

/// Parse a `tokenizer.json` given as text (e.g. from Python's `Tokenizer.to_str()`).
pub fn tokenizer_from_str(json: &str) -> Result<Tokenizer> {
    let mut tok: Tokenizer = json
        .parse()
        .map_err(|e| Error::Config(format!("cannot load the tokenizer: {e}")))?;
    tok.with_truncation(None)
        .map_err(|e| Error::Config(e.to_string()))?;
    tok.with_padding(None);
    Ok(tok)
}

/// Where a tokenizer comes from: a `tokenizer.json` path, or its JSON text.
#[derive(Debug, Clone, Copy)]
pub enum TokenizerSource<'a> {
    /// A `tokenizer.json` file.
    Path(&'a Path),
    /// The JSON text of a tokenizer (e.g. Python's `Tokenizer.to_str()`).
    Json(&'a str),
}

/// Identity of a loaded tokenizer: the file's path, length and modification time (a rewritten
/// file is loaded again), or a hash of the JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheKey {
    File(std::path::PathBuf, u64, Option<std::time::SystemTime>),
    Json(u128, usize),
}

/// Loaded tokenizers kept across calls: parsing a 32k–150k-token `tokenizer.json` costs tens to
/// hundreds of milliseconds, far more than counting the tokens of a batch of lines.
const CACHE_SIZE: usize = 4;

type Cache = std::sync::Mutex<Vec<(CacheKey, std::sync::Arc<Tokenizer>)>>;

fn cache() -> &'static Cache {
    static CACHE: std::sync::OnceLock<Cache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| std::sync::Mutex::new(Vec::new()))
}

/// [`load_tokenizer`] or [`tokenizer_from_str`], through a small cache of recently loaded
/// tokenizers (most recent last), so that repeated calls from Python on the same file or
/// `tokenizers.Tokenizer` parse it once.
pub fn cached_tokenizer(source: TokenizerSource<'_>) -> Result<std::sync::Arc<Tokenizer>> {
    let key = match source {
        TokenizerSource::Path(path) => {
            let meta = std::fs::metadata(path).map_err(|e| {
                Error::Config(format!(
                    "{}: cannot load the tokenizer: {e}",
                    path.display()
                ))
            })?;
            CacheKey::File(path.to_path_buf(), meta.len(), meta.modified().ok())
        }
        TokenizerSource::Json(json) => {
            CacheKey::Json(xxhash_rust::xxh3::xxh3_128(json.as_bytes()), json.len())
        }
    };
    {
        // A poisoned lock only means another thread panicked while holding it; the list itself
        // is always valid.
        let mut entries = cache().lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
            let entry = entries.remove(i);
            let tok = entry.1.clone();
            entries.push(entry);
            return Ok(tok);
        }
    }
    let tok = std::sync::Arc::new(match source {
        TokenizerSource::Path(path) => load_tokenizer(path)?,
        TokenizerSource::Json(json) => tokenizer_from_str(json)?,
    });
    let mut entries = cache().lock().unwrap_or_else(|e| e.into_inner());
    entries.retain(|(k, _)| *k != key);
    if entries.len() >= CACHE_SIZE {
        entries.remove(0);
    }
    entries.push((key, tok.clone()));
    Ok(tok)
}

/// A document-stage prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPrompt {
    /// The token ids sent to the model (at most `max_tokens`).
    pub ids: Vec<u32>,
    /// The rendered prompt, cut after the last kept token.
    pub text: String,
    /// Whether tokens were cut off (the trailing ` [/INST]` is then gone, as in the reference).
    pub truncated: bool,
}

/// The document-stage prompt: the raw document as the user message, rendered, encoded without
/// adding special tokens (the template holds the BOS), and right-truncated at `max_tokens`.
pub fn doc_prompt(
    tok: &Tokenizer,
    text: &str,
    template: &PromptTemplate,
    max_tokens: usize,
) -> Result<DocPrompt> {
    let rendered = template.render(text);
    let enc = tok
        .encode(rendered.as_str(), false)
        .map_err(|e| Error::Config(format!("tokenizer failed: {e}")))?;
    let n = enc.get_ids().len();
    if n <= max_tokens {
        return Ok(DocPrompt {
            ids: enc.get_ids().to_vec(),
            text: rendered,
            truncated: false,
        });
    }
    let ids = enc.get_ids()[..max_tokens].to_vec();
    let end = match max_tokens.checked_sub(1) {
        Some(last) => enc.get_offsets()[last].1,
        None => 0,
    };
    let mut end = end.min(rendered.len());
    while !rendered.is_char_boundary(end) {
        end += 1;
    }
    Ok(DocPrompt {
        ids,
        text: rendered[..end].to_string(),
        truncated: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama2_template_is_byte_exact() {
        let t = PromptTemplate::llama2();
        assert_eq!(
            t.render("[doc]\n[000]Hi\n[/doc]"),
            "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>>\n\n[doc]\n[000]Hi\n[/doc] [/INST]"
        );
        // The content is stripped as a whole: trailing whitespace of the message goes, leading
        // whitespace stays (it is inside the content).
        assert_eq!(
            t.render("  body \n\u{a0}"),
            "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>>\n\n  body [/INST]"
        );
        // An empty message also loses the blank line after the system block.
        assert_eq!(
            t.render(""),
            "<s>[INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.\n<</SYS>> [/INST]"
        );
        // Braces in the message are not placeholders.
        assert!(t
            .render("{system} {user}")
            .ends_with("\n\n{system} {user} [/INST]"));
        assert_eq!(PromptTemplate::plain().render(" x "), " x ");
    }

    #[test]
    fn cached_tokenizers_are_reused_until_the_file_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("tokenizer.json");
        let json = crate::prox::chunk::tests::word_tokenizer()
            .to_string(false)
            .expect("json");
        std::fs::write(&path, &json).expect("write");
        let a = cached_tokenizer(TokenizerSource::Path(&path)).expect("a");
        let b = cached_tokenizer(TokenizerSource::Path(&path)).expect("b");
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        let c = cached_tokenizer(TokenizerSource::Json(&json)).expect("c");
        let d = cached_tokenizer(TokenizerSource::Json(&json)).expect("d");
        assert!(std::sync::Arc::ptr_eq(&c, &d));
        // A rewritten file (another length) is loaded again, and a broken one is an error.
        std::fs::write(&path, format!("{json} ")).expect("rewrite");
        let e = cached_tokenizer(TokenizerSource::Path(&path)).expect("e");
        assert!(!std::sync::Arc::ptr_eq(&a, &e));
        std::fs::write(&path, "{").expect("break");
        let err = cached_tokenizer(TokenizerSource::Path(&path)).expect_err("broken");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");
        let missing = dir.path().join("missing.json");
        assert!(cached_tokenizer(TokenizerSource::Path(&missing)).is_err());
    }
}
