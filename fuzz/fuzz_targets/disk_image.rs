//! `vmm disk ls/get` on arbitrary bytes as a disk image: opening checks the whole image
//! (superblock, free map, directory) and must refuse a bad one with an error, never
//! panic; an image it accepts can be listed and every listed file read back.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use vmm::disk::DiskImage;

fuzz_target!(|data: &[u8]| {
    // One file per fuzzing process, in memory-backed /dev/shm when there is one.
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let path = dir.join(format!("vmm-fuzz-disk-{}.img", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(data))
        .expect("write the image");
    if let Ok(image) = DiskImage::open(&path) {
        for file in image.list() {
            let got = image.get(file.name.as_bytes());
            if let Ok(bytes) = got {
                assert_eq!(bytes.len() as u64, file.size);
            }
        }
    }
    let _ = std::fs::remove_file(&path);
});
