//! Scratch directories for the disk module's unit tests, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Distinguishes directories made by tests running in parallel in one process.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory, removed with its contents when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/vmm-disk-TAG-PID-N`.
    pub(crate) fn new(tag: &str) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("vmm-disk-{tag}-{}-{id}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// `NAME` inside the directory.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
