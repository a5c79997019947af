//! Opening `/dev/kvm` and checking that it offers everything this VMM relies on.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use kvm_ioctls::{Cap, Kvm};

/// The KVM API version every stable kernel reports.
const KVM_API_VERSION: i32 = 12;

/// Capabilities the VMM uses, with what each is for (shown when one is missing).
const REQUIRED_CAPS: &[(Cap, &str)] = &[
    (Cap::UserMemory, "guest RAM backed by host memory"),
    (Cap::SetTssAddr, "the TSS area Intel hosts need"),
    (Cap::ExtCpuid, "passing CPUID to the guest"),
    (Cap::SplitIrqchip, "the in-kernel local APIC and its timer"),
    (Cap::IrqRouting, "routing device interrupts as MSIs"),
    (Cap::Irqfd, "device interrupts without VM exits"),
    (Cap::ImmediateExit, "stopping the vCPU on timeout"),
    (Cap::GetTscKhz, "the TSC frequency the kernel is told"),
    (
        Cap::SyncRegs,
        "page operations, which pass their arguments in registers",
    ),
];

/// Why KVM could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error(
        "{0} does not exist: this host has no KVM. Load the kvm_intel or kvm_amd module, or enable nested virtualisation for this VM"
    )]
    Missing(PathBuf),
    #[error(
        "{0} is not readable and writable by this user: add the user to the group that owns it (often `kvm`), or run as root"
    )]
    NoAccess(PathBuf),
    #[error("cannot open {0}: {1}")]
    Open(PathBuf, std::io::Error),
    #[error("{0} is not a KVM device")]
    NotKvm(PathBuf),
    #[error("KVM API version {0} is not the supported version {KVM_API_VERSION}")]
    ApiVersion(i32),
    #[error("KVM lacks a capability this VMM needs: {0:?} ({1})")]
    MissingCap(Cap, &'static str),
}

/// An open, checked `/dev/kvm`.
pub struct KvmContext {
    pub kvm: Kvm,
}

impl std::fmt::Debug for KvmContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvmContext").finish_non_exhaustive()
    }
}

impl KvmContext {
    /// Opens the KVM device at `path` and checks the API version and capabilities.
    pub fn open(path: &Path) -> Result<Self, KvmError> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| KvmError::Missing(path.to_owned()))?;
        let kvm = Kvm::new_with_path(&c_path).map_err(|e| {
            let err = std::io::Error::from_raw_os_error(e.errno());
            match err.kind() {
                std::io::ErrorKind::NotFound => KvmError::Missing(path.to_owned()),
                std::io::ErrorKind::PermissionDenied => KvmError::NoAccess(path.to_owned()),
                _ => KvmError::Open(path.to_owned(), err),
            }
        })?;
        let version = kvm.get_api_version();
        if version < 0 {
            return Err(KvmError::NotKvm(path.to_owned()));
        }
        if version != KVM_API_VERSION {
            return Err(KvmError::ApiVersion(version));
        }
        for &(cap, purpose) in REQUIRED_CAPS {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCap(cap, purpose));
            }
        }
        Ok(KvmContext { kvm })
    }
}

/// What kind of KVM this host has, for reports: hardware-assisted, or software (PVM).
pub fn host_kind() -> &'static str {
    if Path::new("/sys/module/kvm_pvm").exists() {
        "pvm (software, shadow paging)"
    } else if Path::new("/sys/module/kvm_intel").exists() {
        "hardware (Intel VMX)"
    } else if Path::new("/sys/module/kvm_amd").exists() {
        "hardware (AMD SVM)"
    } else {
        "unknown"
    }
}
