//! `vmm disk`: create, list and edit disk images from the host.
//!
//! ```text
//! vmm disk create IMAGE [--mib N]       new empty image of N MiB (default 8)
//! vmm disk ls IMAGE                     one line per file: NAME SIZE (bytes), by name
//! vmm disk put IMAGE HOST[:GUEST]...    copy host files in (GUEST: HOST's base name)
//! vmm disk get IMAGE GUEST[:HOST]...    copy files out (HOST: GUEST in the current dir)
//! vmm disk rm IMAGE NAME...             remove files
//! ```
//! `HOST[:GUEST]` splits at the last `:` and `GUEST[:HOST]` at the first, so a guest name
//! given on this command line cannot hold a `:`. Each command checks all its arguments
//! (names, host files, files present or absent) before it changes anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::build::{MIB, load_host_files};
use super::{DiskError, DiskImage, MAX_SIZE_BYTES, check_file_name};

/// Default size of `vmm disk create`: room for a handful of test programs and their files.
pub const DEFAULT_CREATE_MIB: u64 = 8;

/// Options of `vmm disk`.
#[derive(Debug, Args)]
pub struct DiskArgs {
    #[command(subcommand)]
    pub command: DiskCommand,
}

/// The `vmm disk` subcommands.
#[derive(Debug, Subcommand)]
pub enum DiskCommand {
    /// Create (or overwrite) an empty disk image.
    Create {
        /// The image file.
        image: PathBuf,
        /// Size in MiB.
        #[arg(long, value_name = "N", default_value_t = DEFAULT_CREATE_MIB,
              value_parser = clap::value_parser!(u64).range(1..=MAX_SIZE_BYTES / MIB))]
        mib: u64,
    },
    /// List the files: one line `NAME SIZE` (size in bytes) per file, sorted by name.
    Ls {
        /// The image file.
        image: PathBuf,
    },
    /// Copy host files into the image.
    Put {
        /// The image file.
        image: PathBuf,
        /// Host file, and the guest name (default: the host file's base name).
        #[arg(value_name = "HOST[:GUEST]", required = true)]
        files: Vec<String>,
    },
    /// Copy files out of the image.
    Get {
        /// The image file.
        image: PathBuf,
        /// Guest name, and the host file to write (default: the guest name, in the current
        /// directory).
        #[arg(value_name = "GUEST[:HOST]", required = true)]
        files: Vec<String>,
    },
    /// Remove files from the image.
    Rm {
        /// The image file.
        image: PathBuf,
        /// Guest names.
        #[arg(value_name = "NAME", required = true)]
        names: Vec<String>,
    },
}

/// Runs one `vmm disk` command, printing to standard output.
pub fn run(args: DiskArgs) -> Result<(), DiskError> {
    run_to(args, &mut std::io::stdout().lock())
}

/// Runs one `vmm disk` command, printing to `out`.
pub fn run_to(args: DiskArgs, out: &mut impl Write) -> Result<(), DiskError> {
    match args.command {
        DiskCommand::Create { image, mib } => {
            DiskImage::create(&image, mib.saturating_mul(MIB))?;
        }
        DiskCommand::Ls { image } => {
            for file in DiskImage::open(&image)?.list() {
                writeln!(out, "{} {}", file.name, file.size).map_err(DiskError::WriteStdout)?;
            }
            out.flush().map_err(DiskError::WriteStdout)?;
        }
        DiskCommand::Put { image, files } => {
            let files: Vec<(String, PathBuf)> = files.iter().map(|arg| host_guest(arg)).collect();
            let loaded = load_host_files(&files)?;
            let mut disk = DiskImage::open(&image)?;
            for (name, _) in &loaded {
                if disk.contains(name.as_bytes()) {
                    return Err(DiskError::FileExists {
                        path: image,
                        name: name.clone(),
                    });
                }
            }
            for (name, data) in &loaded {
                disk.put(name.as_bytes(), data)?;
            }
        }
        DiskCommand::Get { image, files } => {
            let disk = DiskImage::open(&image)?;
            let mut fetched = Vec::with_capacity(files.len());
            for arg in &files {
                let (name, host) = guest_host(arg);
                fetched.push((disk.get(name.as_bytes())?, host));
            }
            for (data, host) in fetched {
                std::fs::write(&host, data)
                    .map_err(|source| DiskError::WriteHostFile { path: host, source })?;
            }
        }
        DiskCommand::Rm { image, mut names } => {
            let mut disk = DiskImage::open(&image)?;
            names.sort();
            names.dedup();
            for name in &names {
                check_file_name(name.as_bytes())?;
                if !disk.contains(name.as_bytes()) {
                    return Err(DiskError::FileNotFound {
                        path: image,
                        name: name.clone(),
                    });
                }
            }
            for name in &names {
                disk.remove(name.as_bytes())?;
            }
        }
    }
    Ok(())
}

/// Splits `HOST[:GUEST]` at the last `:`; without one, the guest name is the host file's
/// base name (empty if it has none, which the name check then rejects).
pub fn host_guest(arg: &str) -> (String, PathBuf) {
    match arg.rsplit_once(':') {
        Some((host, guest)) => (guest.to_string(), PathBuf::from(host)),
        None => {
            let host = PathBuf::from(arg);
            let guest = Path::new(arg)
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            (guest, host)
        }
    }
}

/// Splits `GUEST[:HOST]` at the first `:`; without one, the host file is the guest name
/// in the current directory.
pub fn guest_host(arg: &str) -> (&str, PathBuf) {
    match arg.split_once(':') {
        Some((guest, host)) => (guest, PathBuf::from(host)),
        None => (arg, PathBuf::from(arg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use clap::Parser;

    /// Just `vmm disk`, so these tests do not depend on the rest of the command line.
    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: DiskCommand,
    }

    fn parse(args: &[&str]) -> Result<DiskArgs, clap::Error> {
        TestCli::try_parse_from(std::iter::once("disk").chain(args.iter().copied())).map(|cli| {
            DiskArgs {
                command: cli.command,
            }
        })
    }

    /// Runs `vmm disk ARGS...`; returns what it printed.
    fn disk(args: &[&str]) -> Result<String, DiskError> {
        let mut out = Vec::new();
        run_to(parse(args).expect("parses"), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn splits_host_and_guest() {
        assert_eq!(host_guest("dir/prog"), ("prog".into(), "dir/prog".into()));
        assert_eq!(host_guest("dir/prog:p"), ("p".into(), "dir/prog".into()));
        assert_eq!(host_guest("a:b:c"), ("c".into(), "a:b".into()));
        assert_eq!(host_guest("/"), ("".into(), "/".into()));
        assert_eq!(guest_host("f"), ("f", "f".into()));
        assert_eq!(guest_host("f:out/x:y"), ("f", "out/x:y".into()));
    }

    #[test]
    fn parses_and_rejects() {
        let args = parse(&["create", "d.img"]).unwrap();
        assert!(matches!(
            args.command,
            DiskCommand::Create {
                mib: DEFAULT_CREATE_MIB,
                ..
            }
        ));
        for bad in [
            &["create", "d.img", "--mib", "0"][..],
            &["create", "d.img", "--mib", "65537"],
            &["put", "d.img"],
            &["get", "d.img"],
            &["rm", "d.img"],
            &["ls"],
            &["frob", "d.img"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_put_ls_get_rm() {
        let dir = TempDir::new("cli");
        let image = dir.join("d.img");
        let image = image.to_str().unwrap();
        let host_a = dir.join("a.txt");
        let host_b = dir.join("bee");
        std::fs::write(&host_a, b"alpha").unwrap();
        std::fs::write(&host_b, vec![9u8; 5000]).unwrap();

        assert_eq!(disk(&["create", image, "--mib", "1"]).unwrap(), "");
        assert_eq!(std::fs::metadata(image).unwrap().len(), MIB);
        let b_arg = format!("{}:b", host_b.display());
        disk(&["put", image, host_a.to_str().unwrap(), &b_arg]).unwrap();
        assert_eq!(disk(&["ls", image]).unwrap(), "a.txt 5\nb 5000\n");

        let out_b = dir.join("out-b");
        let get_arg = format!("b:{}", out_b.display());
        disk(&["get", image, &get_arg]).unwrap();
        assert_eq!(std::fs::read(&out_b).unwrap(), vec![9u8; 5000]);

        disk(&["rm", image, "a.txt", "a.txt"]).unwrap();
        assert_eq!(disk(&["ls", image]).unwrap(), "b 5000\n");
    }

    #[test]
    fn commands_check_everything_before_changing_anything() {
        let dir = TempDir::new("cli-atomic");
        let image = dir.join("d.img");
        let image_arg = image.to_str().unwrap();
        let host = dir.join("h");
        std::fs::write(&host, b"h").unwrap();
        let host_arg = |guest: &str| format!("{}:{guest}", host.display());
        disk(&["create", image_arg]).unwrap();
        disk(&["put", image_arg, &host_arg("old")]).unwrap();

        let err = disk(&["put", image_arg, &host_arg("new"), &host_arg("old")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "disk image {} already holds a file named \"old\"; remove it first",
                image.display()
            )
        );
        let missing = dir.join("missing");
        let err = disk(&[
            "put",
            image_arg,
            &host_arg("new"),
            missing.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(matches!(err, DiskError::ReadHostFile { .. }));
        let err = disk(&["rm", image_arg, "old", "nope"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no file named \"nope\" in disk image {}", image.display())
        );
        assert_eq!(disk(&["ls", image_arg]).unwrap(), "old 1\n");

        let out = dir.join("out");
        let get_arg = format!("old:{}", out.display());
        assert!(disk(&["get", image_arg, &get_arg, "nope:x"]).is_err());
        assert!(!out.exists(), "nothing is written when one file is missing");
    }
}
