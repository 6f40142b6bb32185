//! Input discovery: files, directories (recursive, sorted), glob patterns and `-` (stdin).
//! The order of inputs is the order given, and within a directory or glob the lexicographic order
//! of paths: "first occurrence" in dedup means first in this order.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// Compression of a JSONL stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip, including multi-member files (as Common Crawl writes them).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// How an input file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// One JSON object per line.
    Jsonl(Compression),
    /// Apache Parquet.
    Parquet,
    /// Plain UTF-8 text (`.txt`, `.txt.gz`, `.txt.zst`), one document per non-blank line. Only
    /// commands that read text without writing records back accept it ([`expand_text_inputs`]).
    Text(Compression),
}

/// One input, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// `None` for standard input.
    pub path: Option<PathBuf>,
    /// How the file is named in messages: the path as found, or `<stdin>`.
    pub display: String,
    /// Name used for generated ids (`name:line`): the file name for a file given directly, the
    /// path below the directory (or below a glob's literal prefix) for files found in one, so
    /// that ids stay unique across subfolders and do not depend on where the data lives.
    pub name: String,
    /// Format, from the extension (`.parquet`, `.gz`, `.zst`, else JSONL); stdin is sniffed.
    pub format: InputFormat,
}

impl InputFile {
    /// An input for `path`, with its format taken from the extension.
    pub fn from_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        InputFile {
            path: Some(path.to_path_buf()),
            display: path.display().to_string(),
            name,
            format: format_of(path),
        }
    }

    /// Standard input (JSONL; gzip and zstd are recognized by their magic bytes).
    pub fn stdin() -> Self {
        InputFile {
            path: None,
            display: "<stdin>".into(),
            name: "stdin".into(),
            format: InputFormat::Jsonl(Compression::None),
        }
    }
}

impl InputFile {
    fn named_below(mut self, root: &Path) -> Self {
        if let Some(rel) = self.path.as_ref().and_then(|p| p.strip_prefix(root).ok()) {
            if !rel.as_os_str().is_empty() {
                self.name = rel.to_string_lossy().replace('\\', "/");
            }
        }
        self
    }
}

/// The directory part of a glob pattern before its first wildcard component.
fn glob_root(pattern: &str) -> PathBuf {
    let mut root = PathBuf::new();
    for c in Path::new(pattern).components() {
        if c.as_os_str().to_string_lossy().contains(['*', '?', '[']) {
            break;
        }
        // glob yields `g/a/x` for `./g/*/x`: drop `.` so the prefix still matches.
        if c != std::path::Component::CurDir {
            root.push(c);
        }
    }
    root
}

/// Compression suffixes tamis does not read or write, refused rather than misread as plain text.
pub(crate) fn unsupported_compression(name: &str) -> Option<&'static str> {
    let lower = name.to_lowercase();
    [".bz2", ".xz", ".lz4", ".br", ".lzma", ".zip", ".7z"]
        .into_iter()
        .find(|ext| lower.ends_with(ext))
}

fn is_text_name(name: &str) -> bool {
    let base = name
        .trim_end_matches(".gz")
        .trim_end_matches(".zst")
        .trim_end_matches(".zstd");
    base.ends_with(".txt")
}

fn format_of(path: &Path) -> InputFormat {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.ends_with(".parquet") || name.ends_with(".pq") {
        InputFormat::Parquet
    } else if name.ends_with(".gz") {
        InputFormat::Jsonl(Compression::Gzip)
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        InputFormat::Jsonl(Compression::Zstd)
    } else {
        InputFormat::Jsonl(Compression::None)
    }
}

/// Whether a file found inside a directory is data tamis reads.
fn is_data_file(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if name.starts_with('.') {
        return false;
    }
    let base = name
        .trim_end_matches(".gz")
        .trim_end_matches(".zst")
        .trim_end_matches(".zstd");
    base.ends_with(".jsonl")
        || base.ends_with(".ndjson")
        || base.ends_with(".json")
        || name.ends_with(".parquet")
        || name.ends_with(".pq")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, text: bool) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir.display().to_string(), e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            // .git, .cache, editor and tamis temporary files: never data.
            continue;
        }
        // Symbolic links to directories are not followed (as in ripgrep): a link back up the
        // tree would read files twice or never end. Links to files are read.
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(false);
        if path.is_dir() {
            if !is_link {
                walk(&path, out, text)?;
            }
        } else if is_data_file(&path)
            || (text && is_text_name(&path.to_string_lossy().to_lowercase()))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// Refuse inputs that cannot be read twice, for commands that do (`what` names the command in
/// the message): standard input, pipes and other files that are not regular files.
pub fn require_rereadable(files: &[InputFile], what: &str) -> Result<()> {
    for f in files {
        let kind = match &f.path {
            None => Some("standard input"),
            Some(p) => match std::fs::metadata(p) {
                Ok(m) if !m.is_file() => Some("not a regular file (a pipe or device)"),
                _ => None,
            },
        };
        if let Some(kind) = kind {
            return Err(Error::Config(format!(
                "{}: {what} reads its inputs more than once, and this is {kind}: save it to a file",
                f.display
            )));
        }
    }
    Ok(())
}

/// Resolve command-line inputs into files, in order.
pub fn expand_inputs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<InputFile>> {
    expand(specs, false)
}

/// Like [`expand_inputs`], for commands that only read text (e.g. `tamis vocab`): `.txt` files
/// (plain, `.gz`, `.zst`; also found in directories) are read as plain text, one document per
/// line, instead of as JSONL.
pub fn expand_text_inputs<S: AsRef<str>>(specs: &[S]) -> Result<Vec<InputFile>> {
    let mut files = expand(specs, true)?;
    for f in &mut files {
        let name = f.display.to_lowercase();
        if let (InputFormat::Jsonl(c), true) = (f.format, is_text_name(&name)) {
            f.format = InputFormat::Text(c);
        }
    }
    Ok(files)
}

fn expand<S: AsRef<str>>(specs: &[S], text: bool) -> Result<Vec<InputFile>> {
    if specs.is_empty() {
        return Err(Error::Config("no inputs given".into()));
    }
    let mut files = Vec::new();
    for spec in specs {
        let spec = spec.as_ref();
        if spec == "-" {
            files.push(InputFile::stdin());
            continue;
        }
        let path = Path::new(spec);
        if let Some(ext) = unsupported_compression(spec) {
            return Err(Error::Config(format!(
                "{spec}: {ext} compression is not supported; use plain, .gz or .zst JSONL, or Parquet"
            )));
        }
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, text)?;
            if found.is_empty() {
                return Err(Error::NoInputs(spec.to_string()));
            }
            found.sort();
            files.extend(
                found
                    .iter()
                    .map(|p| InputFile::from_path(p).named_below(path)),
            );
        } else if path.exists() {
            files.push(InputFile::from_path(path));
        } else if spec.contains(['*', '?', '[']) {
            // Like a shell, `*` and `?` do not match a leading dot.
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..Default::default()
            };
            let pattern = glob::glob_with(spec, options)
                .map_err(|e| Error::Config(format!("bad glob pattern {spec:?}: {e}")))?;
            let mut found: Vec<PathBuf> = pattern
                .filter_map(|p| p.ok())
                .filter(|p| p.is_file())
                .collect();
            if found.is_empty() {
                return Err(Error::NoInputs(spec.to_string()));
            }
            found.sort();
            let root = glob_root(spec);
            files.extend(
                found
                    .iter()
                    .map(|p| InputFile::from_path(p).named_below(&root)),
            );
        } else {
            return Err(Error::io(
                spec,
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
            ));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extension() {
        assert_eq!(
            format_of(Path::new("a.jsonl")),
            InputFormat::Jsonl(Compression::None)
        );
        assert_eq!(
            format_of(Path::new("a.jsonl.gz")),
            InputFormat::Jsonl(Compression::Gzip)
        );
        assert_eq!(
            format_of(Path::new("a.JSONL.ZST")),
            InputFormat::Jsonl(Compression::Zstd)
        );
        assert_eq!(format_of(Path::new("x/a.parquet")), InputFormat::Parquet);
    }

    #[test]
    fn directories_are_walked_in_sorted_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "b.jsonl",
            "a.jsonl.gz",
            "notes.txt",
            ".hidden.jsonl",
            "sub/c.parquet",
        ] {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(&p, b"").expect("write");
        }
        let files = expand_inputs(&[dir.path().to_string_lossy()]).expect("expand");
        let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a.jsonl.gz", "b.jsonl", "sub/c.parquet"]);
        let pattern = format!("{}/*/*.parquet", dir.path().display());
        let files = expand_inputs(&[pattern]).expect("glob");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].name, "sub/c.parquet");
    }

    #[test]
    fn text_inputs_are_opt_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["a.txt", "b.jsonl", "c.txt.gz"] {
            std::fs::write(dir.path().join(name), b"x\n").expect("write");
        }
        let root = dir.path().to_string_lossy();
        let names = |files: Vec<InputFile>| -> Vec<(String, InputFormat)> {
            files.into_iter().map(|f| (f.name, f.format)).collect()
        };
        assert_eq!(
            names(expand_inputs(&[&root]).expect("jsonl")),
            [("b.jsonl".into(), InputFormat::Jsonl(Compression::None))]
        );
        assert_eq!(
            names(expand_text_inputs(&[&root]).expect("text")),
            [
                ("a.txt".into(), InputFormat::Text(Compression::None)),
                ("b.jsonl".into(), InputFormat::Jsonl(Compression::None)),
                ("c.txt.gz".into(), InputFormat::Text(Compression::Gzip)),
            ]
        );
    }

    #[test]
    fn missing_inputs_are_errors() {
        assert!(matches!(
            expand_inputs(&["/nonexistent/x.jsonl"]),
            Err(Error::Io { .. })
        ));
        assert!(matches!(
            expand_inputs(&["/nonexistent/*.jsonl"]),
            Err(Error::NoInputs(_))
        ));
    }
}
