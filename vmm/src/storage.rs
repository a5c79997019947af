//! The disks of one run: the file-system image (fresh, or the user's `--disk`), the swap
//! file, and copying `--get` files out afterwards.
//!
//! A fresh image lives in the temporary directory and is removed when the run ends. The
//! swap file is created sparse and unlinked at once, so it disappears with the process
//! however the process ends.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::disk::{self, DiskError, DiskImage};

/// Why the disks could not be prepared or files copied out.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Disk(#[from] DiskError),
    #[error("cannot open the disk image {0}: {1}")]
    OpenImage(PathBuf, std::io::Error),
    #[error("cannot create a temporary file in {0}: {1}; set TMPDIR to a writable directory")]
    TempFile(PathBuf, std::io::Error),
    #[error("cannot use {0} as the swap file: {1}")]
    SwapFile(PathBuf, std::io::Error),
    #[error("swap file {0} is {1} bytes, not a positive multiple of 4096")]
    SwapFileSize(PathBuf, u64),
    #[error("--get {guest}: cannot write {host}: {error}")]
    WriteHost {
        guest: String,
        host: PathBuf,
        error: std::io::Error,
    },
}

/// `--put HOST[:GUEST]`: a host file and its name on the guest disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutSpec {
    pub host: PathBuf,
    pub guest: String,
}

/// `--get GUEST[:HOST]`: a guest file and where to copy it on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetSpec {
    pub guest: String,
    pub host: PathBuf,
}

/// Parses `HOST[:GUEST]` (split at the last colon, as `vmm disk put` does); the guest name
/// defaults to the host file's base name.
pub fn parse_put(spec: &str) -> Result<PutSpec, String> {
    let (guest, host) = disk::cli::host_guest(spec);
    if guest.is_empty() {
        return Err(format!("{spec:?} names no file"));
    }
    Ok(PutSpec { host, guest })
}

/// Parses `GUEST[:HOST]` (split at the first colon, as `vmm disk get` does); the host path
/// defaults to the guest name in the current directory.
pub fn parse_get(spec: &str) -> Result<GetSpec, String> {
    let (guest, host) = disk::cli::guest_host(spec);
    if guest.is_empty() {
        return Err("an empty guest file name".to_string());
    }
    Ok(GetSpec {
        guest: guest.to_string(),
        host,
    })
}

/// Where the file-system disk comes from.
#[derive(Debug, Clone)]
pub enum FsDiskSource {
    /// A fresh image holding these files; `size_mib` overrides "the files plus 8 MiB".
    Fresh {
        puts: Vec<PutSpec>,
        size_mib: Option<u64>,
    },
    /// The user's image, used in place (changes persist); `puts` are added to it first.
    Existing { path: PathBuf, puts: Vec<PutSpec> },
}

/// Where the swap disk comes from.
#[derive(Debug, Clone)]
pub enum SwapSource {
    /// No swap disk.
    None,
    /// A sparse temporary file of this many MiB.
    Temp { mib: u64 },
    /// The user's file; created with `mib` MiB if it does not exist.
    File { path: PathBuf, mib: u64 },
}

/// A path removed when dropped.
#[derive(Debug)]
struct TempPath(PathBuf);

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The prepared disks of a run.
#[derive(Debug)]
pub struct Disks {
    /// The file-system image (read-write).
    pub fs: File,
    /// Its path, for copying files out after the run.
    pub fs_path: PathBuf,
    _fs_temp: Option<TempPath>,
    /// The swap disk, if any.
    pub swap: Option<File>,
}

/// A unique path in the temporary directory.
fn temp_path(what: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("vmm-{}-{what}-{n}.img", std::process::id()))
}

fn open_rw(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open(path)
}

/// Builds or opens the file-system image and creates the swap file.
pub fn prepare(fs: &FsDiskSource, swap: &SwapSource) -> Result<Disks, StorageError> {
    let (fs_path, fs_temp) = match fs {
        FsDiskSource::Fresh { puts, size_mib } => {
            let path = temp_path("fs");
            let guard = TempPath(path.clone());
            let files: Vec<(String, PathBuf)> = puts
                .iter()
                .map(|p| (p.guest.clone(), p.host.clone()))
                .collect();
            disk::build_image(&path, &files, *size_mib)?;
            (path, Some(guard))
        }
        FsDiskSource::Existing { path, puts } => {
            if !puts.is_empty() {
                let mut image = DiskImage::open(path)?;
                for put in puts {
                    let data =
                        std::fs::read(&put.host).map_err(|source| DiskError::ReadHostFile {
                            path: put.host.clone(),
                            source,
                        })?;
                    image.put(put.guest.as_bytes(), &data)?;
                }
            }
            (path.clone(), None)
        }
    };
    let fs_file = open_rw(&fs_path).map_err(|e| StorageError::OpenImage(fs_path.clone(), e))?;
    let swap = match swap {
        SwapSource::None => None,
        SwapSource::Temp { mib } => Some(temp_swap(*mib)?),
        SwapSource::File { path, mib } => Some(user_swap(path, *mib)?),
    };
    Ok(Disks {
        fs: fs_file,
        fs_path,
        _fs_temp: fs_temp,
        swap,
    })
}

/// A sparse swap file of `mib` MiB, already unlinked.
fn temp_swap(mib: u64) -> Result<File, StorageError> {
    let path = temp_path("swap");
    let dir = std::env::temp_dir();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| StorageError::TempFile(dir.clone(), e))?;
    let _ = std::fs::remove_file(&path);
    file.set_len(mib << 20)
        .map_err(|e| StorageError::TempFile(dir, e))?;
    Ok(file)
}

/// The user's swap file: used as it is if it exists, else created sparse with `mib` MiB.
fn user_swap(path: &Path, mib: u64) -> Result<File, StorageError> {
    let error = |e| StorageError::SwapFile(path.to_owned(), e);
    let file = match open_rw(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(error)?;
            file.set_len(mib << 20).map_err(error)?;
            file
        }
        Err(e) => return Err(error(e)),
    };
    let len = file.metadata().map_err(error)?.len();
    if len == 0 || !len.is_multiple_of(4096) {
        return Err(StorageError::SwapFileSize(path.to_owned(), len));
    }
    Ok(file)
}

/// Copies each `--get` file out of the image at `image`. Every file is attempted; the first
/// error is returned.
pub fn copy_out(image: &Path, gets: &[GetSpec]) -> Result<(), StorageError> {
    if gets.is_empty() {
        return Ok(());
    }
    let image = DiskImage::open(image)?;
    let mut first_error = None;
    for get in gets {
        let result = image
            .get(get.guest.as_bytes())
            .map_err(StorageError::from)
            .and_then(|data| {
                std::fs::write(&get.host, data).map_err(|error| StorageError::WriteHost {
                    guest: get.guest.clone(),
                    host: get.host.clone(),
                    error,
                })
            });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_specs() {
        let p = |s| parse_put(s).unwrap();
        assert_eq!(
            p("data.txt"),
            PutSpec {
                host: "data.txt".into(),
                guest: "data.txt".into()
            }
        );
        assert_eq!(
            p("/tmp/x/data.txt"),
            PutSpec {
                host: "/tmp/x/data.txt".into(),
                guest: "data.txt".into()
            }
        );
        assert_eq!(
            p("/tmp/x/data.txt:d"),
            PutSpec {
                host: "/tmp/x/data.txt".into(),
                guest: "d".into()
            }
        );
        assert_eq!(
            p("a:b:c"),
            PutSpec {
                host: "a:b".into(),
                guest: "c".into()
            }
        );
        assert!(parse_put("/").is_err());
        assert!(parse_put("host:").is_err());
    }

    #[test]
    fn get_specs() {
        let g = |s| parse_get(s).unwrap();
        assert_eq!(
            g("out"),
            GetSpec {
                guest: "out".into(),
                host: "out".into()
            }
        );
        assert_eq!(
            g("out:/tmp/result"),
            GetSpec {
                guest: "out".into(),
                host: "/tmp/result".into()
            }
        );
        assert_eq!(
            g("out:a:b"),
            GetSpec {
                guest: "out".into(),
                host: "a:b".into()
            }
        );
        assert!(parse_get("").is_err());
    }

    #[test]
    fn swap_files() {
        let file = temp_swap(2).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 2 << 20);
        let path = temp_path("test-swap");
        let file = user_swap(&path, 1).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 1 << 20);
        drop(file);
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert!(matches!(
            user_swap(&path, 1),
            Err(StorageError::SwapFileSize(_, 100))
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
