//! One fresh disk image built from host files, for `vmm run --put HOST[:GUEST]`.
//!
//! Everything that can be wrong with the request (a guest name the format cannot hold, a
//! name given twice, an unreadable host file, too many files, a disk too small) is found
//! before the image file is created, so a failed build leaves nothing behind.

use std::path::{Path, PathBuf};

use abi::fs::{BLOCK_SIZE, DEFAULT_DIR_BLOCKS, DIR_ENTRIES_PER_BLOCK, MAX_BLOCKS, Superblock};

use super::{DiskError, DiskImage, MAX_SIZE_BYTES, check_file_name, layout_for_size};

/// Free space a disk sized from its files gets on top of them, for files the guest makes.
pub const SLACK_MIB: u64 = 8;
/// Bytes per MiB.
pub const MIB: u64 = 1024 * 1024;
/// Blocks one free-map block describes.
const BLOCKS_PER_FREEMAP_BLOCK: u64 = BLOCK_SIZE * 8;

/// Creates (or replaces) the image at `path` holding `files`, each a guest name and the
/// host file to copy. The disk is `size_mib` MiB if given, else just large enough for the
/// files and the metadata plus [`SLACK_MIB`] MiB free. Validates every name and reads every
/// host file before creating the image; removes a half-built image on a write error.
pub fn build_image(
    path: &Path,
    files: &[(String, PathBuf)],
    size_mib: Option<u64>,
) -> Result<(), DiskError> {
    let loaded = load_host_files(files)?;
    let entries = DEFAULT_DIR_BLOCKS * DIR_ENTRIES_PER_BLOCK;
    if loaded.len() as u64 > entries {
        return Err(DiskError::TooManyFiles {
            count: loaded.len(),
            entries,
        });
    }
    let data_blocks = loaded
        .iter()
        .map(|(_, data)| (data.len() as u64).div_ceil(BLOCK_SIZE))
        .fold(0, u64::saturating_add);
    let sb = match size_mib {
        Some(size_mib) => layout_of_given_size(size_mib, data_blocks)?,
        None => layout_for_size(
            total_blocks_for(data_blocks, SLACK_MIB * MIB / BLOCK_SIZE)? * BLOCK_SIZE,
        )?,
    };

    let mut image = DiskImage::create(path, sb.total_blocks * BLOCK_SIZE)?;
    let result = loaded
        .iter()
        .try_for_each(|(name, data)| image.put(name.as_bytes(), data));
    if result.is_err() {
        drop(image);
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Checks every guest name (valid for the format, none twice), then reads every host file;
/// returns the names with the contents. The first problem found is the error.
pub fn load_host_files(files: &[(String, PathBuf)]) -> Result<Vec<(String, Vec<u8>)>, DiskError> {
    for (index, (name, _)) in files.iter().enumerate() {
        check_file_name(name.as_bytes())?;
        if files[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(DiskError::DuplicateName { name: name.clone() });
        }
    }
    files
        .iter()
        .map(|(name, host)| {
            std::fs::read(host)
                .map(|data| (name.clone(), data))
                .map_err(|source| DiskError::ReadHostFile {
                    path: host.clone(),
                    source,
                })
        })
        .collect()
}

/// The smallest disk, in blocks, holding `data_blocks` of files and `slack_blocks` more:
/// superblock, free map (whose size depends on the total), directory, data.
fn total_blocks_for(data_blocks: u64, slack_blocks: u64) -> Result<u64, DiskError> {
    let fixed = (1 + DEFAULT_DIR_BLOCKS)
        .saturating_add(data_blocks)
        .saturating_add(slack_blocks);
    // The free map grows with the total; iterate to the fixed point (at most two rounds
    // in practice, as one free-map block covers 32768 blocks).
    let mut freemap_blocks = 1;
    let total = loop {
        let total = fixed.saturating_add(freemap_blocks);
        let needed = total.div_ceil(BLOCKS_PER_FREEMAP_BLOCK);
        if needed <= freemap_blocks {
            break total;
        }
        freemap_blocks = needed;
    };
    if total > MAX_BLOCKS {
        return Err(DiskError::ImageTooLarge {
            needed_bytes: total.saturating_mul(BLOCK_SIZE),
        });
    }
    Ok(total)
}

/// The layout of a `size_mib` MiB disk, if it is valid and holds `data_blocks` of files.
fn layout_of_given_size(size_mib: u64, data_blocks: u64) -> Result<Superblock, DiskError> {
    let needed_blocks = total_blocks_for(data_blocks, 0)?;
    if size_mib > MAX_SIZE_BYTES / MIB {
        return Err(DiskError::SizeOutOfRange {
            size_bytes: size_mib.saturating_mul(MIB),
        });
    }
    let sb = layout_for_size(size_mib * MIB)?;
    if needed_blocks > sb.total_blocks {
        let needed_bytes = needed_blocks * BLOCK_SIZE;
        return Err(DiskError::ImageTooSmall {
            size_mib,
            needed_bytes,
            needed_mib: needed_bytes.div_ceil(MIB),
        });
    }
    Ok(sb)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    fn spec(name: &str, host: &Path) -> (String, PathBuf) {
        (name.to_string(), host.to_path_buf())
    }

    #[test]
    fn sized_from_the_files_plus_slack() {
        let dir = TempDir::new("build-auto");
        let host_a = dir.join("a.bin");
        let host_b = dir.join("b.txt");
        std::fs::write(&host_a, vec![7u8; 3 * BLOCK_SIZE as usize + 1]).unwrap();
        std::fs::write(&host_b, b"hello").unwrap();
        let image_path = dir.join("disk.img");
        build_image(
            &image_path,
            &[spec("prog", &host_a), spec("notes.txt", &host_b)],
            None,
        )
        .unwrap();
        // 4 + 1 data blocks, 2048 slack, superblock, free map, directory.
        assert_eq!(
            std::fs::metadata(&image_path).unwrap().len(),
            (5 + 2048 + 3) * BLOCK_SIZE
        );
        let image = DiskImage::open(&image_path).unwrap();
        assert_eq!(
            image.get(b"prog").unwrap(),
            vec![7u8; 3 * BLOCK_SIZE as usize + 1]
        );
        assert_eq!(image.get(b"notes.txt").unwrap(), b"hello");
    }

    #[test]
    fn no_files_gives_an_empty_disk() {
        let dir = TempDir::new("build-empty");
        let image_path = dir.join("disk.img");
        build_image(&image_path, &[], None).unwrap();
        assert!(DiskImage::open(&image_path).unwrap().list().is_empty());
    }

    #[test]
    fn given_size_is_used_when_the_files_fit() {
        let dir = TempDir::new("build-sized");
        let host = dir.join("f");
        std::fs::write(&host, vec![1u8; 1000]).unwrap();
        let image_path = dir.join("disk.img");
        build_image(&image_path, &[spec("f", &host)], Some(1)).unwrap();
        assert_eq!(std::fs::metadata(&image_path).unwrap().len(), MIB);
    }

    #[test]
    fn given_size_too_small() {
        let dir = TempDir::new("build-small");
        let host = dir.join("f");
        // 1 MiB of data needs 256 data blocks plus 3 metadata blocks.
        std::fs::write(&host, vec![1u8; MIB as usize]).unwrap();
        let image_path = dir.join("disk.img");
        let err = build_image(&image_path, &[spec("f", &host)], Some(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the files do not fit in a 1 MiB disk: with the file-system metadata they need \
             1060864 bytes, so make the disk at least 2 MiB"
        );
        assert!(!image_path.exists());
        let err = build_image(&image_path, &[], Some(0)).unwrap_err();
        assert!(matches!(err, DiskError::SizeOutOfRange { size_bytes: 0 }));
        let err = build_image(&image_path, &[], Some(u64::MAX)).unwrap_err();
        assert!(matches!(err, DiskError::SizeOutOfRange { .. }));
        assert!(!image_path.exists());
    }

    #[test]
    fn bad_requests_create_nothing() {
        let dir = TempDir::new("build-bad");
        let host = dir.join("f");
        std::fs::write(&host, b"x").unwrap();
        let missing = dir.join("missing");
        let image_path = dir.join("disk.img");
        let cases: [(Vec<(String, PathBuf)>, String); 4] = [
            (
                // The bad name is reported even though a host file before it is missing.
                vec![spec("ok", &missing), spec("fifteen15bytes!", &host)],
                "file name \"fifteen15bytes!\" is 15 bytes long, but the disk format holds \
                 names of at most 14 bytes"
                    .to_string(),
            ),
            (
                vec![spec("a/b", &host)],
                "file name \"a/b\" contains '/' or a NUL byte, which the disk format does not \
                 allow"
                    .to_string(),
            ),
            (
                vec![spec("x", &host), spec("y", &host), spec("x", &missing)],
                "guest file name \"x\" is given more than once".to_string(),
            ),
            (
                vec![spec("x", &host), spec("y", &missing)],
                format!(
                    "cannot read {}: No such file or directory (os error 2)",
                    missing.display()
                ),
            ),
        ];
        for (files, message) in cases {
            let err = build_image(&image_path, &files, None).unwrap_err();
            assert_eq!(err.to_string(), message);
            assert!(!image_path.exists(), "{message}");
        }
    }

    #[test]
    fn too_many_files() {
        let dir = TempDir::new("build-many");
        let host = dir.join("f");
        std::fs::write(&host, b"").unwrap();
        let files: Vec<_> = (0..129).map(|i| spec(&format!("f{i}"), &host)).collect();
        let image_path = dir.join("disk.img");
        let err = build_image(&image_path, &files, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "129 files do not fit in the disk's directory, which holds 128"
        );
        assert!(!image_path.exists());
        build_image(&image_path, &files[..128], None).unwrap();
        assert_eq!(DiskImage::open(&image_path).unwrap().list().len(), 128);
    }

    #[test]
    fn totals_account_for_the_free_map() {
        assert_eq!(total_blocks_for(0, 0).unwrap(), 3);
        // 32765 + 3 metadata blocks = 32768: one free-map block still covers it.
        assert_eq!(total_blocks_for(32765, 0).unwrap(), 32768);
        // One more data block needs a second free-map block.
        assert_eq!(total_blocks_for(32766, 0).unwrap(), 32770);
        assert!(matches!(
            total_blocks_for(MAX_BLOCKS, 0),
            Err(DiskError::ImageTooLarge { .. })
        ));
        assert!(matches!(
            total_blocks_for(u64::MAX, 1),
            Err(DiskError::ImageTooLarge { .. })
        ));
        for data in [0, 1, 32765, 32766, 100_000] {
            let total = total_blocks_for(data, 0).unwrap().max(abi::fs::MIN_BLOCKS);
            let sb = Superblock::for_disk(total).unwrap();
            assert!(sb.data_start() + data <= sb.total_blocks, "{data}");
        }
    }
}
