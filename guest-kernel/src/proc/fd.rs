//! A process's file descriptors.
//!
//! Descriptor 0 is the console input and 1 the console output until closed. `open` uses the
//! lowest free number from 2 up, so it never returns 0 or 1 while those are open. Entries
//! made by `dup2` share one open file (and so one position); `fork` gives the child its own
//! copy of every open file (each with its own position).

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::fs::File;
use crate::sync::Lock;

/// Most descriptors a process may have open (the ABI asks for at least 128).
pub const MAX_FDS: usize = 512;

/// What a descriptor refers to.
#[derive(Clone)]
pub enum Fd {
    /// The console's input.
    Stdin,
    /// The console's output.
    Stdout,
    /// An open file, shared by the descriptors `dup2` made from one another.
    File(Arc<Lock<File>>),
}

/// The table.
pub struct FdTable {
    slots: Vec<Option<Fd>>,
}

impl FdTable {
    /// A table with the console on 0 and 1.
    pub fn new() -> Self {
        FdTable {
            slots: alloc::vec![Some(Fd::Stdin), Some(Fd::Stdout)],
        }
    }

    /// The descriptor `fd`, if it is open.
    pub fn get(&self, fd: i64) -> Option<&Fd> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
    }

    /// Adds `file` at the lowest free number from 2 up; `None` if the table is full.
    pub fn open(&mut self, file: File) -> Option<i64> {
        let free = (2..MAX_FDS).find(|&i| self.slots.get(i).is_none_or(Option::is_none))?;
        if free >= self.slots.len() {
            self.slots.resize(free + 1, None);
        }
        self.slots[free] = Some(Fd::File(Arc::new(Lock::new(file))));
        Some(free as i64)
    }

    /// Closes `fd`; false if it was not open.
    pub fn close(&mut self, fd: i64) -> bool {
        let slot = usize::try_from(fd).ok().and_then(|i| self.slots.get_mut(i));
        slot.and_then(Option::take).is_some()
    }

    /// Makes `new` refer to what `old` refers to (sharing its position), closing `new`
    /// first; returns `new`, or -1 if `old` is not open or `new` is out of range.
    pub fn dup2(&mut self, old: i64, new: i64) -> i64 {
        let Some(fd) = self.get(old).cloned() else {
            return -1;
        };
        let Some(index) = usize::try_from(new).ok().filter(|&i| i < MAX_FDS) else {
            return -1;
        };
        if old == new {
            return new;
        }
        if index >= self.slots.len() {
            self.slots.resize(index + 1, None);
        }
        self.slots[index] = Some(fd);
        new
    }

    /// The table a forked child starts with: the same descriptors, each open file copied
    /// with its own position.
    pub fn duplicate(&self) -> FdTable {
        let slots = self
            .slots
            .iter()
            .map(|slot| match slot {
                Some(Fd::File(file)) => {
                    Some(Fd::File(Arc::new(Lock::new(file.lock().duplicate()))))
                }
                other => other.clone(),
            })
            .collect();
        FdTable { slots }
    }

    /// Closes every descriptor (at exit).
    pub fn close_all(&mut self) {
        self.slots.clear();
    }
}
