//! The supplemental page table (Pintos-KAIST's `spt`): what each user page of a process
//! should hold, whether or not a frame backs it now.
//!
//! A program's segment pages are registered here at exec, without frames (`Uninit`); the
//! first touch loads the page ([`super::fault`]): a frame, the executable's bytes read
//! straight into it, zeros for the rest. Whether a frame backs a page now is the page
//! table's business; this table says what the page holds when it has none: the executable's
//! bytes (a page never written: eviction drops it, the next touch loads it again), a swap
//! slot (an anonymous page written to swap), or a mapped file's bytes.
//!
//! Keys are page addresses; the hasher is one multiplication, because the fault path runs
//! as emulated ring-0 code on some hosts.

use core::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashMap;

/// Hashes a page address: the page number times a 64-bit odd constant (Fibonacci hashing),
/// which spreads consecutive pages over the table's buckets and control bytes.
#[derive(Default)]
pub struct PageHasher(u64);

impl Hasher for PageHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
        self.0 = self.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u64(&mut self, page: u64) {
        self.0 = (page >> 12).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Bytes of the executable a page is filled with: `len` bytes from `file_offset`, placed at
/// `page_offset` in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRange {
    pub page_offset: u16,
    pub len: u16,
    pub file_offset: u64,
}

/// A user page's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// Initialised from the executable: zeros, except up to two ranges of the executable
    /// (two segments may share a page). It keeps this kind while its frame is clean (so
    /// eviction may drop it); once written and evicted, it becomes [`Page::Anon`].
    Uninit {
        writable: bool,
        ranges: [Option<FileRange>; 2],
    },
    /// Anonymous (stack, written program pages): in its frame, or in swap slot `slot`.
    Anon { writable: bool, slot: Option<u32> },
    /// A page of a file mapping (mmap): `range` of the mapped file (empty past its end),
    /// zeros after. Loaded on first touch; it stays this kind while the mapping lasts (the
    /// page table says whether a frame backs it now).
    Mapped { writable: bool, range: FileRange },
}

/// One process's table.
#[derive(Default)]
pub struct Spt {
    pages: HashMap<u64, Page, BuildHasherDefault<PageHasher>>,
}

impl Spt {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of the page at `page`, if the process owns it, to update in place (one
    /// lookup on the fault path).
    pub fn get_mut(&mut self, page: u64) -> Option<&mut Page> {
        self.pages.get_mut(&page)
    }

    /// Registers (part of) a segment on `page`: zeros, plus `range` of the executable if any.
    /// A page already registered by another segment gets the second range, and is writable
    /// if either segment is. False if the page already has two ranges or is loaded.
    pub fn add_segment_page(
        &mut self,
        page: u64,
        writable: bool,
        range: Option<FileRange>,
    ) -> bool {
        match self.pages.get_mut(&page) {
            None => {
                self.pages.insert(
                    page,
                    Page::Uninit {
                        writable,
                        ranges: [range, None],
                    },
                );
                true
            }
            Some(Page::Uninit {
                writable: w,
                ranges,
            }) => {
                *w |= writable;
                match (range, ranges.iter_mut().find(|r| r.is_none())) {
                    (None, _) => true,
                    (Some(range), Some(slot)) => {
                        *slot = Some(range);
                        true
                    }
                    (Some(_), None) => false,
                }
            }
            Some(Page::Anon { .. } | Page::Mapped { .. }) => false,
        }
    }

    /// A copy (fork), or `None` if the kernel heap has no room for it: a table can be large
    /// and a failed kernel allocation would be fatal, so the room is reserved first.
    pub fn try_clone(&self) -> Option<Spt> {
        let mut pages = HashMap::default();
        pages.try_reserve(self.pages.capacity()).ok()?;
        pages.extend(self.pages.iter().map(|(&k, &v)| (k, v)));
        Some(Spt { pages })
    }

    /// Pages registered.
    pub fn len(&self) -> u64 {
        self.pages.len() as u64
    }

    /// Whether `more` pages may be registered: within `budget` pages in all, and the kernel
    /// heap has room for them (reserved now, so registering them cannot fail).
    pub fn make_room(&mut self, more: u64, budget: u64) -> bool {
        self.len().saturating_add(more) <= budget
            && usize::try_from(more).is_ok_and(|more| self.pages.try_reserve(more).is_ok())
    }

    /// Registers `page` as part of a file mapping.
    pub fn add_mapped(&mut self, page: u64, writable: bool, range: FileRange) {
        self.pages.insert(page, Page::Mapped { writable, range });
    }

    /// Forgets `page` (its mapping is gone).
    pub fn remove(&mut self, page: u64) {
        self.pages.remove(&page);
    }

    /// Registers `page` as anonymous and in memory (a stack page). Callers made room.
    pub fn add_anon(&mut self, page: u64, writable: bool) {
        self.pages.insert(
            page,
            Page::Anon {
                writable,
                slot: None,
            },
        );
    }

    /// The swap slots the pages hold (to share them at fork or free them at exit).
    pub fn slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.pages.values().filter_map(|p| match p {
            Page::Anon { slot: Some(s), .. } => Some(*s),
            _ => None,
        })
    }

    /// Whether the process owns `page` (loaded or not).
    pub fn contains(&self, page: u64) -> bool {
        self.pages.contains_key(&page)
    }
}
