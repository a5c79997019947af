//! The VM: its file descriptor, RAM slots, and interrupt delivery.
//!
//! Interrupts use KVM's *split* irqchip: the local APIC (with its timer) is emulated in the
//! host kernel, and there is no 8259 PIC, IOAPIC or PIT. A device interrupt is an MSI that
//! KVM delivers straight to the LAPIC as vector `abi::devices::IRQ_VECTOR_BASE + irq`, through
//! an irqfd, so raising it never leaves the host kernel. Measured on PVM, the full irqchip
//! (PIC + IOAPIC + PIT) made registering RAM take ~5 ms and closing the VM 13-33 ms; the split
//! irqchip costs well under a millisecond for both.

use abi::devices::IRQ_VECTOR_BASE;
use abi::layout::LAPIC_GPA;
use kvm_bindings::{
    KVM_CAP_SPLIT_IRQCHIP, KVM_IRQ_ROUTING_MSI, KvmIrqRouting, kvm_enable_cap,
    kvm_irq_routing_entry, kvm_userspace_memory_region,
};
use kvm_ioctls::VmFd;
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::kvm::KvmContext;

/// IOAPIC inputs KVM reserves for a user-space IOAPIC under the split irqchip. None is
/// emulated; the number only bounds the interrupt lines (GSIs) devices may use.
const SPLIT_IRQCHIP_PINS: u64 = 24;

/// Guest-physical address of the three pages Intel's VMX needs for real-mode emulation
/// (`KVM_SET_TSS_ADDR`). It lies in the device hole, away from RAM and device registers,
/// and the guest never uses it.
const VMX_TSS_GPA: usize = 0xfffb_d000;

/// Why the VM could not be created.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("KVM_CREATE_VM failed: {0}")]
    CreateVm(kvm_ioctls::Error),
    #[error("KVM_SET_TSS_ADDR failed: {0}")]
    SetTssAddress(kvm_ioctls::Error),
    #[error("creating the in-kernel local APIC (split irqchip) failed: {0}")]
    CreateIrqChip(kvm_ioctls::Error),
    #[error("registering guest RAM with KVM failed: {0}")]
    SetMemoryRegion(kvm_ioctls::Error),
    #[error("interrupt line {0} is out of range")]
    BadIrq(u32),
    #[error("routing an interrupt line failed: {0}")]
    SetGsiRouting(kvm_ioctls::Error),
    #[error("creating an interrupt eventfd failed: {0}")]
    IrqEventFd(std::io::Error),
    #[error("connecting an interrupt eventfd failed: {0}")]
    RegisterIrqfd(kvm_ioctls::Error),
}

/// A created VM with its RAM registered.
pub struct Vm {
    /// Declared before `memory` so it is dropped (closed) first.
    pub fd: VmFd,
    pub memory: GuestMemoryMmap,
    /// Every MSI route installed so far (KVM_SET_GSI_ROUTING replaces the whole table).
    routes: Vec<kvm_irq_routing_entry>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("regions", &self.memory.num_regions())
            .finish_non_exhaustive()
    }
}

impl Vm {
    /// Creates the VM with the split irqchip (before any vCPU, as KVM requires) and
    /// registers every RAM region of `memory` as a memory slot.
    pub fn new(kvm: &KvmContext, memory: GuestMemoryMmap) -> Result<Self, VmError> {
        let fd = kvm.kvm.create_vm().map_err(VmError::CreateVm)?;
        fd.set_tss_address(VMX_TSS_GPA)
            .map_err(VmError::SetTssAddress)?;
        let mut split = kvm_enable_cap {
            cap: KVM_CAP_SPLIT_IRQCHIP,
            ..Default::default()
        };
        split.args[0] = SPLIT_IRQCHIP_PINS;
        fd.enable_cap(&split).map_err(VmError::CreateIrqChip)?;
        for (slot, region) in memory.iter().enumerate() {
            let host = memory
                .get_host_address(region.start_addr())
                .expect("a region's start address is inside guest memory");
            let slot_region = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().raw_value(),
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: the host range is a live mapping owned by `memory`, which `Vm` owns;
            // `fd` is declared first, so the VM is closed before the mapping is dropped.
            // Regions of one GuestMemoryMmap never overlap, so neither do the slots.
            unsafe { fd.set_user_memory_region(slot_region) }.map_err(VmError::SetMemoryRegion)?;
        }
        Ok(Vm {
            fd,
            memory,
            routes: Vec::new(),
        })
    }

    /// Connects interrupt line `irq`: returns an eventfd whose every write delivers vector
    /// `IRQ_VECTOR_BASE + irq` to the vCPU's local APIC, without a VM exit.
    pub fn connect_irq(&mut self, irq: u32) -> Result<EventFd, VmError> {
        if u64::from(irq) >= SPLIT_IRQCHIP_PINS {
            return Err(VmError::BadIrq(irq));
        }
        let mut entry = kvm_irq_routing_entry {
            gsi: irq,
            type_: KVM_IRQ_ROUTING_MSI,
            ..Default::default()
        };
        // The MSI address of the APIC with ID 0 (the one vCPU), physical destination mode.
        entry.u.msi.address_lo = LAPIC_GPA as u32;
        // Fixed delivery, edge triggered: the data is just the vector.
        entry.u.msi.data = u32::from(IRQ_VECTOR_BASE) + irq;
        self.routes.push(entry);
        let mut table = KvmIrqRouting::new(0).map_err(|_| VmError::BadIrq(irq))?;
        for route in &self.routes {
            table.push(*route).map_err(|_| VmError::BadIrq(irq))?;
        }
        self.fd
            .set_gsi_routing(&table)
            .map_err(VmError::SetGsiRouting)?;
        let event = EventFd::new(EFD_NONBLOCK).map_err(VmError::IrqEventFd)?;
        self.fd
            .register_irqfd(&event, irq)
            .map_err(VmError::RegisterIrqfd)?;
        Ok(event)
    }
}
