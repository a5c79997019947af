//! The virtio-mmio transport, version 2 (the virtio 1.x "modern" register layout), for a
//! device with one split virtqueue.
//!
//! Owns the transport registers (feature selection and negotiation, device status, interrupt
//! status) and the queue's configuration. It knows no device type: the device owns the
//! window from [`CONFIG_OFFSET`] on and decides what a queue notification does.
//!
//! Invariants:
//! * Only 32-bit accesses at 4-byte-aligned offsets below [`CONFIG_OFFSET`] reach a
//!   register; any other access reads as zero and a write to it is dropped. Undefined
//!   registers behave the same way.
//! * `FEATURES_OK` sticks in the status only if the driver accepted a subset of the offered
//!   features that includes `VIRTIO_F_VERSION_1` (the driver reads it back to check).
//! * Queue configuration (size, ring addresses) changes only while the queue is not ready.
//! * Writing 0 to `Status` returns every register and the queue to the power-on state.
//! * Once the device reports `DEVICE_NEEDS_RESET`, [`MmioTransport::is_live`] is false until
//!   the driver resets it: notifications are then ignored.

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::{
    VIRTIO_MMIO_CONFIG, VIRTIO_MMIO_CONFIG_GENERATION, VIRTIO_MMIO_DEVICE_FEATURES,
    VIRTIO_MMIO_DEVICE_FEATURES_SEL, VIRTIO_MMIO_DEVICE_ID, VIRTIO_MMIO_DRIVER_FEATURES,
    VIRTIO_MMIO_DRIVER_FEATURES_SEL, VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INTERRUPT_ACK,
    VIRTIO_MMIO_INTERRUPT_STATUS, VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
    VIRTIO_MMIO_QUEUE_AVAIL_LOW, VIRTIO_MMIO_QUEUE_DESC_HIGH, VIRTIO_MMIO_QUEUE_DESC_LOW,
    VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_QUEUE_NUM, VIRTIO_MMIO_QUEUE_NUM_MAX,
    VIRTIO_MMIO_QUEUE_READY, VIRTIO_MMIO_QUEUE_SEL, VIRTIO_MMIO_QUEUE_USED_HIGH,
    VIRTIO_MMIO_QUEUE_USED_LOW, VIRTIO_MMIO_STATUS, VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_VERSION,
};
use virtio_queue::{Queue, QueueT};

/// `MagicValue`: the bytes "virt", little-endian.
pub const MMIO_MAGIC: u32 = 0x7472_6976;
/// `Version` of the modern (virtio 1.x) register layout.
pub const MMIO_VERSION: u32 = 2;
/// `VendorID` this VMM reports (no PCI vendor; the spec only asks for a stable value).
pub const MMIO_VENDOR_ID: u32 = 0;
/// Offset of the device-specific configuration space.
pub const CONFIG_OFFSET: u64 = VIRTIO_MMIO_CONFIG as u64;
/// The feature bit every modern device offers and every modern driver must accept.
pub const FEATURE_VERSION_1: u64 = 1 << VIRTIO_F_VERSION_1;
/// Index of the one queue this transport serves.
pub const QUEUE_INDEX: u32 = 0;

/// The transport registers of one virtio-mmio device with a single queue.
#[derive(Debug)]
pub struct MmioTransport {
    /// `DeviceID` (a `virtio_ids::VIRTIO_ID_*`).
    device_id: u32,
    /// Every feature the device offers.
    device_features: u64,
    /// Which 32-bit half of the features `DeviceFeatures` shows.
    device_features_sel: u32,
    /// Features the driver accepted so far.
    driver_features: u64,
    /// Which 32-bit half of `driver_features` a `DriverFeatures` write sets.
    driver_features_sel: u32,
    /// `QueueSel`; queue registers act only when it is [`QUEUE_INDEX`].
    queue_sel: u32,
    /// The queue's configuration and ring positions.
    queue: Queue,
    /// `InterruptStatus` bits (`VIRTIO_MMIO_INT_VRING`, `VIRTIO_MMIO_INT_CONFIG`).
    interrupt_status: u32,
    /// The device status byte the driver writes (plus `NEEDS_RESET` set by the device).
    status: u32,
}

impl MmioTransport {
    /// A device of type `device_id` offering `device_features` (`VIRTIO_F_VERSION_1` is
    /// always added) with one queue of at most `queue_num_max` entries (a power of two, at
    /// most 32768).
    pub fn new(
        device_id: u32,
        device_features: u64,
        queue_num_max: u16,
    ) -> Result<Self, virtio_queue::Error> {
        Ok(MmioTransport {
            device_id,
            device_features: device_features | FEATURE_VERSION_1,
            device_features_sel: 0,
            driver_features: 0,
            driver_features_sel: 0,
            queue_sel: 0,
            queue: Queue::new(queue_num_max)?,
            interrupt_status: 0,
            status: 0,
        })
    }

    /// The queue, for the device to serve requests from.
    pub fn queue_mut(&mut self) -> &mut Queue {
        &mut self.queue
    }

    /// The device status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The features the driver accepted.
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The `InterruptStatus` bits.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// True when the driver has finished setup (`FEATURES_OK` accepted, then `DRIVER_OK`), the
    /// queue is ready, and neither side has given up on the device: only then may the device
    /// touch the queue.
    pub fn is_live(&self) -> bool {
        let up = VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;
        let dead = VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET;
        self.status & up == up && self.status & dead == 0 && self.queue.ready()
    }

    /// Sets `bits` in `InterruptStatus`; the caller then raises the interrupt line.
    pub fn set_interrupt(&mut self, bits: u32) {
        self.interrupt_status |= bits;
    }

    /// The device gives up until the driver resets it (say, the queue lies outside guest
    /// RAM). Sets `DEVICE_NEEDS_RESET` and the configuration-change interrupt bit, as the
    /// spec requires after `DRIVER_OK`; the caller then raises the interrupt line.
    pub fn set_needs_reset(&mut self) {
        self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
        self.interrupt_status |= VIRTIO_MMIO_INT_CONFIG;
    }

    /// Returns every register and the queue to the power-on state.
    fn reset(&mut self) {
        self.device_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        self.queue.reset();
        self.interrupt_status = 0;
        self.status = 0;
    }

    /// Reads the register at `offset` (below [`CONFIG_OFFSET`]) into `data`.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let value = match register(offset, data.len()) {
            Some(reg) => self.read_register(reg),
            None => 0,
        };
        if let Ok(word) = <&mut [u8; 4]>::try_from(&mut *data) {
            *word = value.to_le_bytes();
        } else {
            data.fill(0);
        }
    }

    fn read_register(&self, reg: u32) -> u32 {
        let queue_selected = self.queue_sel == QUEUE_INDEX;
        match reg {
            VIRTIO_MMIO_MAGIC_VALUE => MMIO_MAGIC,
            VIRTIO_MMIO_VERSION => MMIO_VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device_id,
            VIRTIO_MMIO_VENDOR_ID => MMIO_VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            },
            // A QueueNumMax of 0 tells the driver the selected queue does not exist.
            VIRTIO_MMIO_QUEUE_NUM_MAX if queue_selected => u32::from(self.queue.max_size()),
            VIRTIO_MMIO_QUEUE_READY if queue_selected => u32::from(self.queue.ready()),
            VIRTIO_MMIO_INTERRUPT_STATUS => self.interrupt_status,
            VIRTIO_MMIO_STATUS => self.status,
            // The configuration space never changes under the driver.
            VIRTIO_MMIO_CONFIG_GENERATION => 0,
            _ => 0,
        }
    }

    /// Writes `data` to the register at `offset` (below [`CONFIG_OFFSET`]). Returns the queue
    /// index the driver notified, if this was a `QueueNotify` write; the caller serves it.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Option<u32> {
        let reg = register(offset, data.len())?;
        let value = u32::from_le_bytes(data.try_into().ok()?);
        let queue_configurable = self.queue_sel == QUEUE_INDEX
            && !self.queue.ready()
            && self.status & (VIRTIO_CONFIG_S_FAILED | VIRTIO_CONFIG_S_NEEDS_RESET) == 0;
        let features_open = self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        match reg {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES if features_open => match self.driver_features_sel {
                0 => {
                    self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value)
                }
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32)
                }
                _ => {}
            },
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            // virtio-queue ignores a size that is zero, too big or not a power of two.
            VIRTIO_MMIO_QUEUE_NUM if queue_configurable => {
                if let Ok(size) = u16::try_from(value) {
                    self.queue.set_size(size);
                }
            }
            VIRTIO_MMIO_QUEUE_READY if self.queue_sel == QUEUE_INDEX => {
                self.queue.set_ready(value == 1)
            }
            VIRTIO_MMIO_QUEUE_NOTIFY => return Some(value),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt_status &= !value,
            VIRTIO_MMIO_STATUS => self.write_status(value),
            // Misaligned ring addresses are ignored by virtio-queue (the old value stays).
            VIRTIO_MMIO_QUEUE_DESC_LOW if queue_configurable => {
                self.queue.set_desc_table_address(Some(value), None)
            }
            VIRTIO_MMIO_QUEUE_DESC_HIGH if queue_configurable => {
                self.queue.set_desc_table_address(None, Some(value))
            }
            VIRTIO_MMIO_QUEUE_AVAIL_LOW if queue_configurable => {
                self.queue.set_avail_ring_address(Some(value), None)
            }
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH if queue_configurable => {
                self.queue.set_avail_ring_address(None, Some(value))
            }
            VIRTIO_MMIO_QUEUE_USED_LOW if queue_configurable => {
                self.queue.set_used_ring_address(Some(value), None)
            }
            VIRTIO_MMIO_QUEUE_USED_HIGH if queue_configurable => {
                self.queue.set_used_ring_address(None, Some(value))
            }
            _ => {}
        }
        None
    }

    /// A `Status` write: 0 resets; otherwise the driver's bits are kept, except that
    /// `FEATURES_OK` is refused for an unacceptable feature set, and `NEEDS_RESET` (the
    /// device's bit) cannot be set or cleared by the driver.
    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value =
            (value & !VIRTIO_CONFIG_S_NEEDS_RESET) | (self.status & VIRTIO_CONFIG_S_NEEDS_RESET);
        let newly_features_ok = value & VIRTIO_CONFIG_S_FEATURES_OK != 0
            && self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0;
        let acceptable = self.driver_features & !self.device_features == 0
            && self.driver_features & FEATURE_VERSION_1 != 0;
        if newly_features_ok && !acceptable {
            value &= !VIRTIO_CONFIG_S_FEATURES_OK;
        }
        self.status = value;
    }
}

/// The register an access of `len` bytes at `offset` names: only aligned 32-bit accesses
/// below the configuration space name one.
fn register(offset: u64, len: usize) -> Option<u32> {
    (len == 4 && offset.is_multiple_of(4) && offset < CONFIG_OFFSET).then_some(offset as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use virtio_bindings::virtio_config::{VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER};

    const BLOCK: u32 = 2;
    const FLUSH: u64 = 1 << 9;

    fn read(t: &MmioTransport, reg: u32) -> u32 {
        let mut word = [0u8; 4];
        t.read(u64::from(reg), &mut word);
        u32::from_le_bytes(word)
    }

    fn write(t: &mut MmioTransport, reg: u32, value: u32) -> Option<u32> {
        t.write(u64::from(reg), &value.to_le_bytes())
    }

    fn transport() -> MmioTransport {
        MmioTransport::new(BLOCK, FLUSH, 256).unwrap()
    }

    #[test]
    fn identity_registers() {
        let t = transport();
        assert_eq!(read(&t, VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
        assert_eq!(read(&t, VIRTIO_MMIO_VERSION), 2);
        assert_eq!(read(&t, VIRTIO_MMIO_DEVICE_ID), BLOCK);
        assert_eq!(read(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
        assert_eq!(read(&t, VIRTIO_MMIO_CONFIG_GENERATION), 0);
    }

    #[test]
    fn feature_words_by_selector() {
        let mut t = transport();
        assert_eq!(read(&t, VIRTIO_MMIO_DEVICE_FEATURES), FLUSH as u32);
        write(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        assert_eq!(read(&t, VIRTIO_MMIO_DEVICE_FEATURES), 1);
        write(&mut t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 7);
        assert_eq!(read(&t, VIRTIO_MMIO_DEVICE_FEATURES), 0);
    }

    fn negotiate(t: &mut MmioTransport, low: u32, high: u32) -> u32 {
        write(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        write(
            t,
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        write(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        write(t, VIRTIO_MMIO_DRIVER_FEATURES, low);
        write(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        write(t, VIRTIO_MMIO_DRIVER_FEATURES, high);
        let s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
        write(t, VIRTIO_MMIO_STATUS, s);
        read(t, VIRTIO_MMIO_STATUS)
    }

    #[test]
    fn features_ok_needs_version_1_and_a_subset() {
        let mut t = transport();
        assert_ne!(
            negotiate(&mut t, FLUSH as u32, 1) & VIRTIO_CONFIG_S_FEATURES_OK,
            0
        );
        assert_eq!(t.driver_features(), FLUSH | FEATURE_VERSION_1);
        // Features are frozen once FEATURES_OK is set.
        write(&mut t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
        assert_eq!(t.driver_features(), FLUSH | FEATURE_VERSION_1);

        let mut t = transport();
        assert_eq!(
            negotiate(&mut t, 0, 0) & VIRTIO_CONFIG_S_FEATURES_OK,
            0,
            "legacy driver"
        );
        // A driver that carries on regardless never gets a live device.
        write(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        write(&mut t, VIRTIO_MMIO_STATUS, 0xf);
        assert_eq!(read(&t, VIRTIO_MMIO_STATUS), 0x7);
        assert!(!t.is_live());
        let mut t = transport();
        let unoffered = negotiate(&mut t, 1 << 3, 1);
        assert_eq!(unoffered & VIRTIO_CONFIG_S_FEATURES_OK, 0);
    }

    #[test]
    fn queue_setup_and_reset() {
        let mut t = transport();
        negotiate(&mut t, 0, 1);
        write(&mut t, VIRTIO_MMIO_QUEUE_NUM, 16);
        write(&mut t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
        write(&mut t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
        write(&mut t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2000);
        write(&mut t, VIRTIO_MMIO_QUEUE_USED_LOW, 0x3000);
        write(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        assert_eq!(read(&t, VIRTIO_MMIO_QUEUE_READY), 1);
        // Ignored while ready.
        write(&mut t, VIRTIO_MMIO_QUEUE_NUM, 32);
        assert!(!t.is_live(), "no DRIVER_OK yet");
        write(&mut t, VIRTIO_MMIO_STATUS, 0xf);
        assert!(t.is_live());
        let q = t.queue_mut();
        assert_eq!(
            (q.size(), q.desc_table(), q.avail_ring(), q.used_ring()),
            (16, 0x1_0000_1000, 0x2000, 0x3000)
        );
        assert_eq!(write(&mut t, VIRTIO_MMIO_QUEUE_NOTIFY, 0), Some(0));

        t.set_needs_reset();
        assert!(!t.is_live());
        assert_eq!(
            read(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET,
            0x40
        );
        assert_eq!(
            read(&t, VIRTIO_MMIO_INTERRUPT_STATUS),
            VIRTIO_MMIO_INT_CONFIG
        );
        write(&mut t, VIRTIO_MMIO_STATUS, 0xf);
        assert!(!t.is_live(), "the driver cannot clear NEEDS_RESET");

        write(&mut t, VIRTIO_MMIO_STATUS, 0);
        assert_eq!(read(&t, VIRTIO_MMIO_STATUS), 0);
        assert_eq!(read(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
        assert_eq!(read(&t, VIRTIO_MMIO_QUEUE_READY), 0);
        assert_eq!(t.queue_mut().size(), 256);
        assert_eq!(t.driver_features(), 0);
    }

    #[test]
    fn other_queues_do_not_exist() {
        let mut t = transport();
        write(&mut t, VIRTIO_MMIO_QUEUE_SEL, 1);
        assert_eq!(read(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
        write(&mut t, VIRTIO_MMIO_QUEUE_READY, 1);
        write(&mut t, VIRTIO_MMIO_QUEUE_SEL, 0);
        assert_eq!(read(&t, VIRTIO_MMIO_QUEUE_READY), 0);
    }

    #[test]
    fn interrupt_ack_clears_bits() {
        let mut t = transport();
        t.set_interrupt(3);
        write(&mut t, VIRTIO_MMIO_INTERRUPT_ACK, 1);
        assert_eq!(read(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 2);
    }

    #[test]
    fn odd_accesses_are_harmless() {
        let mut t = transport();
        let mut byte = [0xaa_u8; 1];
        t.read(0, &mut byte);
        assert_eq!(byte, [0]);
        let mut long = [0xaa_u8; 8];
        t.read(0, &mut long);
        assert_eq!(long, [0; 8]);
        let mut word = [0xaa_u8; 4];
        t.read(2, &mut word);
        assert_eq!(word, [0; 4], "misaligned");
        t.read(0x0a0, &mut word);
        assert_eq!(word, [0; 4], "undefined register");
        assert_eq!(t.write(u64::from(VIRTIO_MMIO_STATUS), &[0xf]), None);
        assert_eq!(t.write(u64::from(VIRTIO_MMIO_QUEUE_NOTIFY), &[0, 0]), None);
        assert_eq!(t.write(u64::from(VIRTIO_MMIO_STATUS) + 1, &[0xf; 4]), None);
        assert_eq!(t.write(0xffff_ffff_ffff_fffc, &[0xf; 4]), None);
        assert_eq!(read(&t, VIRTIO_MMIO_STATUS), 0);
    }
}
