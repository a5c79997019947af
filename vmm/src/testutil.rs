//! Scratch directories for the crate's unit tests (disk images, block backends), removed
//! when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Distinguishes directories made by tests running in parallel in one process.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory, removed with its contents when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/vmm-unit-TAG-PID-N`.
    pub(crate) fn new(tag: &str) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vmm-unit-{tag}-{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// `NAME` inside the directory.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// A new sparse file of `len_bytes` at `NAME` inside the directory, open for reading and
    /// writing.
    pub(crate) fn sparse_file(&self, name: &str, len_bytes: u64) -> File {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.join(name))
            .expect("create scratch file");
        file.set_len(len_bytes).expect("size scratch file");
        file
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
