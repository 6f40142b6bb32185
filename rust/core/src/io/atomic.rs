//! Atomic file creation: write to a hidden temporary file in the target directory, rename on
//! commit, delete on drop. An interrupted run never leaves a valid-looking partial output.
//!
//! Special files (`/dev/null`, a named pipe, a terminal) are written in place: renaming over
//! them would replace the device or pipe with a regular file.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file that appears under its final name only when [`AtomicFile::commit`] succeeds.
#[derive(Debug)]
pub struct AtomicFile {
    /// `None` when writing in place to a special file.
    tmp: Option<PathBuf>,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file next to `target` (or open a special file in place) and return
    /// the guard with the file to write.
    pub fn create(target: &Path) -> Result<(Self, File)> {
        let display = target.display().to_string();
        if let Ok(meta) = std::fs::metadata(target) {
            if meta.is_dir() {
                return Err(Error::Config(format!(
                    "{display}: is a directory, not an output file"
                )));
            }
            if !meta.is_file() {
                let file = File::options()
                    .write(true)
                    .open(target)
                    .map_err(|e| Error::io(&display, e))?;
                let guard = AtomicFile {
                    tmp: None,
                    target: target.to_path_buf(),
                    committed: false,
                };
                return Ok((guard, file));
            }
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::Config(format!("{display}: not a file name")))?
            .to_string_lossy();
        let tmp = dir.join(format!(".{name}.tamis-tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&display, e))?;
        let guard = AtomicFile {
            tmp: Some(tmp),
            target: target.to_path_buf(),
            committed: false,
        };
        Ok((guard, file))
    }

    /// Move the finished file to its final name.
    pub fn commit(mut self) -> Result<()> {
        if let Some(tmp) = &self.tmp {
            std::fs::rename(tmp, &self.target)
                .map_err(|e| Error::io(self.target.display().to_string(), e))?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let (Some(tmp), false) = (&self.tmp, self.committed) {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn appears_only_on_commit() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("out.jsonl");
        let (guard, mut f) = AtomicFile::create(&target).expect("create");
        f.write_all(b"x").expect("write");
        assert!(!target.exists());
        guard.commit().expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"x");

        let (guard, _) = AtomicFile::create(&target).expect("create");
        drop(guard);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "temp file left behind"
        );
    }
}
