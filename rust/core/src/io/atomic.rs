//! Atomic file creation: write to a hidden temporary file in the target directory, rename on
//! commit, delete on drop. An interrupted run never leaves a valid-looking partial output.

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A file that appears under its final name only when [`AtomicFile::commit`] succeeds.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Create the temporary file next to `target` and return it with its guard.
    pub fn create(target: &Path) -> Result<(Self, File)> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .ok_or_else(|| Error::Config(format!("{}: not a file name", target.display())))?
            .to_string_lossy();
        let tmp = dir.join(format!(".{name}.tamis-tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(target.display().to_string(), e))?;
        Ok((
            AtomicFile {
                tmp,
                target: target.to_path_buf(),
                committed: false,
            },
            file,
        ))
    }

    /// Move the finished file to its final name.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| Error::io(self.target.display().to_string(), e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
