//! Typed errors. Every error that concerns user data names the file and the line (JSONL, 1-based)
//! or row (Parquet, 1-based) it came from.

use std::fmt;

/// Result alias for tamis-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with one input record. Each kind has a stable snake_case slug
/// ([`RecordError::slug`]) used in stats, rejects files and Python's `TamisError.kind`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8: {0}")]
    InvalidUtf8(String),
    /// The line is not valid JSON.
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    /// The line is valid JSON but not an object.
    #[error("record is not a JSON object")]
    NotAnObject,
    /// The text field is absent.
    #[error("missing text field {0:?}")]
    MissingText(String),
    /// The text field is present but is not a string (null, number, ...).
    #[error("text field {key:?} is {found}, not a string")]
    TextNotString {
        /// Field name.
        key: String,
        /// JSON type found.
        found: &'static str,
    },
    /// The dedup key field (`--key`) is absent.
    #[error("missing key field {0:?}")]
    MissingKey(String),
    /// The dedup key field is present but not a string.
    #[error("key field {key:?} is {found}, not a string")]
    KeyNotString {
        /// Field name.
        key: String,
        /// JSON type found.
        found: &'static str,
    },
    /// A field a stage reads (e.g. a ProX program) is absent.
    #[error("missing field {0:?}")]
    MissingField(String),
    /// That field is present but not a string.
    #[error("field {key:?} is {found}, not a string")]
    FieldNotString {
        /// Field name.
        key: String,
        /// JSON type found.
        found: &'static str,
    },
    /// A stage sets a field inside this field (`metadata.language`), which is not an object.
    #[error("field {0:?} is not an object, so a stage cannot set fields inside it")]
    FieldNotObject(String),
    /// The file could not be read past this point (truncated or corrupt archive, bad Parquet).
    #[error("unreadable input: {0}")]
    CorruptFile(String),
    /// The field of a `max:`/`min:` keep policy (`--keep`, `--priority`) is present but not a
    /// number.
    #[error("keep field {key:?} is {found}, not a number")]
    KeepFieldNotNumber {
        /// Field name.
        key: String,
        /// JSON type found.
        found: &'static str,
    },
}

impl RecordError {
    /// Stable snake_case name of this kind of error.
    pub fn slug(&self) -> &'static str {
        match self {
            RecordError::InvalidUtf8(_) => "invalid_utf8",
            RecordError::InvalidJson(_) => "invalid_json",
            RecordError::NotAnObject => "not_an_object",
            RecordError::MissingText(_) => "missing_text",
            RecordError::TextNotString { .. } => "text_not_string",
            RecordError::MissingKey(_) => "missing_key",
            RecordError::KeyNotString { .. } => "key_not_string",
            RecordError::MissingField(_) => "missing_field",
            RecordError::FieldNotString { .. } => "field_not_string",
            RecordError::FieldNotObject(_) => "field_not_object",
            RecordError::CorruptFile(_) => "corrupt_file",
            RecordError::KeepFieldNotNumber { .. } => "keep_field_not_number",
        }
    }

    /// Every slug, for documentation and coverage tests.
    pub const SLUGS: &'static [&'static str] = &[
        "invalid_utf8",
        "invalid_json",
        "not_an_object",
        "missing_text",
        "text_not_string",
        "missing_key",
        "key_not_string",
        "missing_field",
        "field_not_string",
        "field_not_object",
        "corrupt_file",
        "keep_field_not_number",
    ];
}

/// What is wrong with a tokenizer file (`tamis vocab`). Each kind has a stable slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// Not JSON, or JSON that is not a `tokenizer.json` the `tokenizers` library can load.
    #[error("not a valid tokenizer.json: {0}")]
    Malformed(String),
    /// A model other than BPE (WordPiece, Unigram, WordLevel).
    #[error("the model is {0}, not BPE: only BPE vocabularies can be extended by continued BPE")]
    UnsupportedModel(String),
    /// BPE dropout makes segmentation random, so there is no single old segmentation to extend.
    #[error("the model uses BPE dropout ({0}); set \"dropout\" to null to extend it")]
    Dropout(String),
    /// WordPiece-style `continuing_subword_prefix` / `end_of_word_suffix` on a BPE model.
    #[error(
        "the model sets {0}; only byte-level and SentencePiece-style BPE models are supported"
    )]
    SubwordAffix(&'static str),
    /// Two tokenizers that cannot be combined (e.g. byte-level and SentencePiece-style).
    #[error("{0}")]
    Incompatible(String),
    /// The extended tokenizer failed validation (a bug: nothing is written).
    #[error("the extended tokenizer failed validation: {0}")]
    Invalid(String),
}

impl TokenizerError {
    /// Stable snake_case name of this kind of error.
    pub fn slug(&self) -> &'static str {
        match self {
            TokenizerError::Malformed(_) => "invalid_tokenizer",
            TokenizerError::UnsupportedModel(_) => "unsupported_model",
            TokenizerError::Dropout(_) => "bpe_dropout",
            TokenizerError::SubwordAffix(_) => "subword_affix",
            TokenizerError::Incompatible(_) => "incompatible_tokenizers",
            TokenizerError::Invalid(_) => "invalid_result",
        }
    }

    /// Every slug, for documentation and coverage tests.
    pub const SLUGS: &'static [&'static str] = &[
        "invalid_tokenizer",
        "unsupported_model",
        "bpe_dropout",
        "subword_affix",
        "incompatible_tokenizers",
        "invalid_result",
    ];
}

/// Where a record sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// 1-based line of a JSONL file.
    Line(u64),
    /// 1-based row of a Parquet file.
    Row(u64),
    /// The file as a whole (it could not be opened as its format).
    File,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(n) => write!(f, "line {n}"),
            Location::Row(n) => write!(f, "row {n}"),
            Location::File => write!(f, "whole file"),
        }
    }
}

/// Errors of tamis-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bad record, when the run is set to fail on bad records.
    #[error("{path}: {location}: {error}")]
    Record {
        /// File the record came from.
        path: String,
        /// Line or row.
        location: Location,
        /// What is wrong.
        error: RecordError,
    },
    /// An I/O failure on a named file.
    #[error("{path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause (part of the message, so not repeated as a source).
        cause: std::io::Error,
    },
    /// An input pattern or directory that matched no readable files.
    #[error("no input files found for {0:?}")]
    NoInputs(String),
    /// Records that cannot be written in the chosen output format (e.g. a Parquet schema clash).
    #[error("{path}: {message}")]
    Output {
        /// The output file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A damaged or inconsistent intermediate file (near-dedup work directory): truncated,
    /// checksum mismatch, out of order, or written with other parameters.
    #[error("{path}: {message}")]
    Intermediate {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Invalid options.
    #[error("{0}")]
    Config(String),
    /// An invalid option value; the message names the option (render it for a surface with
    /// [`crate::options::OptionError::render`]).
    #[error("{0}")]
    Options(#[from] crate::options::OptionError),
    /// A tokenizer file that cannot be read or extended.
    #[error("{path}: {error}")]
    Tokenizer {
        /// The tokenizer file (or `<tokenizer>` for one given in memory).
        path: String,
        /// What is wrong.
        error: TokenizerError,
    },
    /// A model checkpoint or tokenizer pair that embeddings cannot be initialized for.
    #[error("{path}: {error}")]
    Embed {
        /// The file or directory.
        path: String,
        /// What is wrong.
        error: crate::embed::EmbedError,
    },
    /// The corpus holds no text to learn from or measure on.
    #[error("{0}: the corpus has no text")]
    EmptyCorpus(String),
    /// Writing to standard output failed because the reader went away (e.g. `| head`).
    #[error("broken pipe")]
    BrokenPipe,
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP) received while working
    /// ([`crate::interrupt`]); nothing was committed.
    #[error("interrupted by {}", crate::interrupt::signal_name(*.0))]
    Interrupted(i32),
}

impl Error {
    /// Stable snake_case name of this error, for Python's `TamisError.kind`.
    pub fn slug(&self) -> &'static str {
        match self {
            Error::Record { error, .. } => error.slug(),
            Error::Io { .. } => "io",
            Error::NoInputs(_) => "no_inputs",
            Error::Output { .. } => "output",
            Error::Intermediate { .. } => "intermediate",
            Error::Config(_) => "config",
            Error::Options(_) => "invalid_option",
            Error::Tokenizer { error, .. } => error.slug(),
            Error::Embed { error, .. } => error.slug(),
            Error::EmptyCorpus(_) => "empty_corpus",
            Error::BrokenPipe => "broken_pipe",
            Error::Interrupted(_) => "interrupted",
        }
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::BrokenPipe {
            return Error::BrokenPipe;
        }
        Error::Io {
            path: path.into(),
            cause: source,
        }
    }
}

/// Human-readable JSON type name of a raw JSON value's first byte.
pub(crate) fn json_type_name(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'n') => "null",
        Some(b't' | b'f') => "a boolean",
        Some(b'"') => "a string",
        Some(b'[') => "an array",
        Some(b'{') => "an object",
        _ => "a number",
    }
}
