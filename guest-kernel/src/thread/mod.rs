//! Kernel threads and the scheduler: preemptive round robin on one CPU.
//!
//! Ownership is the invariant that keeps this simple: a thread's `Box<Thread>` is always in
//! exactly one place: `current` (running), the ready queue, the sleep list, a wait queue
//! of a semaphore or condition (blocked), `idle`, or `dying` (exited, its stack still in use
//! until the next switch completes). The address of a `Thread` never changes, so the
//! contexts the switch code uses stay valid while the boxes move between queues.
//!
//! Every scheduler operation runs with interrupts off. The timer interrupt calls [`tick`],
//! which wakes sleepers and, when the running thread's slice is used up, switches away
//! from inside the interrupt handler; the thread continues from there when next chosen.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use crate::arch::x86_64::context::{self, Context, FpuState};
use crate::arch::x86_64::trap::TrapFrame;
use crate::mm::frame::{self, Frame, Pool};
use crate::platform;
use crate::sync::{IrqGuard, IrqSpinLock};
use abi::layout::PAGE_SIZE;

/// Timer ticks a thread may run before another ready thread gets the CPU.
pub const TIME_SLICE_TICKS: u32 = 4;
/// Size of a kernel thread's stack.
pub const STACK_SIZE: usize = 16 * 1024;

/// Thread identifier; 1 is the boot thread.
pub type Tid = u64;

/// A kernel stack: [`STACK_PAGES`] contiguous kernel frames, reached through the direct map.
/// Its memory is not cleared (a stack needs no initial contents, and clearing costs where
/// ring 0 is emulated). Freed stacks are kept on a list for reuse, linked through their
/// first word, so taking and returning one is O(1) and never involves the heap (a 16 KiB
/// heap allocation measured 0.5 ms on PVM).
struct Stack(Frame);

/// Pages per kernel stack.
const STACK_PAGES: u64 = (STACK_SIZE as u64) / PAGE_SIZE;

/// Lowest frame of the most recently freed stack, or 0.
static FREE_STACKS: IrqSpinLock<u64> = IrqSpinLock::new("free stacks", 0);
/// Stacks on [`FREE_STACKS`].
static FREE_STACK_COUNT: AtomicU64 = AtomicU64::new(0);

/// Kernel frames held by freed stacks, ready for new threads.
pub fn cached_stack_pages() -> u64 {
    FREE_STACK_COUNT.load(Ordering::Relaxed) * STACK_PAGES
}

impl Stack {
    /// A stack: a freed one, a run of fresh frames from the kernel pool, or, once those
    /// are gone, a run out of the kernel heap's free memory. `None` if none is left.
    fn new() -> Option<Self> {
        let mut head = FREE_STACKS.lock();
        if *head != 0 {
            let stack = Frame::from_gpa(*head);
            // SAFETY: a free stack is owned by the list; its first word is the link.
            *head = unsafe { (stack.virt() as *const u64).read() };
            FREE_STACK_COUNT.fetch_sub(1, Ordering::Relaxed);
            return Some(Stack(stack));
        }
        drop(head);
        frame::alloc_fresh_run(Pool::Kernel, STACK_PAGES)
            .or_else(|| crate::mm::heap::take_run(STACK_PAGES))
            .map(Stack)
    }

    fn top(&self) -> u64 {
        self.0.virt() + STACK_SIZE as u64
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let mut head = FREE_STACKS.lock();
        // SAFETY: the stack's thread is gone, so the list now owns its memory.
        unsafe { (self.0.virt() as *mut u64).write(*head) };
        *head = self.0.gpa();
        FREE_STACK_COUNT.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a thread runs in user mode: a process (`proc::Process`). The scheduler only loads
/// its page tables when it switches to the thread; the rest is the owner's business,
/// reached through [`current_task`].
///
/// # Safety
/// At most one type implements this trait: [`current_task`] and [`take_current_task`] hand
/// the running thread's task back as the type asked for without a check at run time (a
/// check on every system call and fault costs where ring 0 is emulated).
pub unsafe trait UserTask: Send + 'static {
    /// Loads the task's page tables if they are not loaded.
    fn activate(&self);
}

/// A kernel thread.
pub struct Thread {
    tid: Tid,
    context: Context,
    /// Saved x87/SSE state; meaningful once `fpu_saved` is set. Allocated uninitialised:
    /// building a 512-byte image per thread costs a lot where ring 0 is emulated, so a
    /// thread that has never been switched out starts from the shared initial image.
    fpu: Box<MaybeUninit<FpuState>>,
    fpu_saved: bool,
    /// `None` for the boot thread, which runs on the boot stack.
    _stack: Option<Stack>,
    /// What the thread runs; taken when it starts.
    entry: Option<Entry>,
    /// Tick at which a sleeping thread becomes ready.
    wake_tick: u64,
    is_idle: bool,
    /// The user process this thread runs, if any (its address space is loaded while the
    /// thread runs).
    process: Option<Box<dyn UserTask>>,
    /// The next thread of the [`ThreadQueue`] this one waits in.
    next: Option<Box<Thread>>,
}

/// Threads waiting in line (a semaphore's, a condition's), linked through the threads
/// themselves: waiting never allocates, so blocking cannot fail for want of kernel memory
/// and costs no allocator work (in ring 0, where that is emulated on PVM).
pub struct ThreadQueue {
    head: Option<Box<Thread>>,
}

impl ThreadQueue {
    pub const fn new() -> Self {
        ThreadQueue { head: None }
    }

    /// Puts `thread` last. Walks the queue: queues here hold a waiter or two.
    pub fn push_back(&mut self, mut thread: Box<Thread>) {
        thread.next = None;
        let mut end = &mut self.head;
        while let Some(waiting) = end {
            end = &mut waiting.next;
        }
        *end = Some(thread);
    }

    /// Takes the first thread.
    pub fn pop_front(&mut self) -> Option<Box<Thread>> {
        let mut first = self.head.take()?;
        self.head = first.next.take();
        Some(first)
    }
}

impl Default for ThreadQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl Thread {
    /// A new thread that starts as `start` says, or `None` if there is no memory for its
    /// stack. A forked child's frame goes to the top of its stack here (where the parent's
    /// kernel runs: at CPL 3 in the fast mode), so that its first steps in ring 0 only
    /// enter user mode from it.
    fn new(start: Start, is_idle: bool) -> Option<Box<Thread>> {
        let stack = Stack::new()?;
        let mut top = stack.top();
        let entry = match start {
            Start::Kernel(f) => Entry::Kernel(f),
            Start::User(frame) => {
                top -= size_of::<TrapFrame>() as u64;
                // SAFETY: the top of a stack no thread runs on yet, which this thread will
                // own; a TrapFrame's size is a multiple of 16, so `top` stays aligned for
                // the context below it.
                unsafe { (top as *mut TrapFrame).write(frame) };
                Entry::User(top)
            }
        };
        let mut thread = Box::new(Thread {
            tid: NEXT_TID.fetch_add(1, Ordering::Relaxed),
            context: Context::default(),
            fpu: Box::new_uninit(),
            fpu_saved: false,
            _stack: None,
            entry: Some(entry),
            wake_tick: 0,
            is_idle,
            process: None,
            next: None,
        });
        let arg = &*thread as *const Thread as u64;
        thread.context = Context::new(top, thread_start, arg);
        thread._stack = Some(stack);
        Some(thread)
    }
}

/// How a new thread starts.
enum Start {
    /// Runs kernel code (which may enter user mode itself).
    Kernel(Box<dyn FnOnce() + Send>),
    /// Resumes user mode from a saved frame (a forked child).
    User(TrapFrame),
}

/// How a new thread starts, once made: [`Start`], with a forked child's frame already at
/// the top of its stack (at this address).
enum Entry {
    Kernel(Box<dyn FnOnce() + Send>),
    User(u64),
}

struct Scheduler {
    current: Option<Box<Thread>>,
    ready: VecDeque<Box<Thread>>,
    /// Sorted by `wake_tick`, latest first, so the next to wake is popped from the end.
    /// Boxed like everywhere else: a thread's
    /// address must not change while it waits, because its saved context is used in place.
    #[allow(clippy::vec_box)]
    sleeping: Vec<Box<Thread>>,
    idle: Option<Box<Thread>>,
    dying: Option<Box<Thread>>,
    /// Dead threads whose memory the kernel at CPL 3 frees at its next event (the fast
    /// mode: see [`bury_dead`]).
    dead: ThreadQueue,
    slice_left: u32,
}

static SCHED: IrqSpinLock<Scheduler> = IrqSpinLock::new(
    "scheduler",
    Scheduler {
        current: None,
        ready: VecDeque::new(),
        sleeping: Vec::new(),
        idle: None,
        dying: None,
        dead: ThreadQueue::new(),
        slice_left: 0,
    },
);
/// The FPU state every thread starts with.
static INITIAL_FPU: FpuState = FpuState::initial();
static NEXT_TID: AtomicU64 = AtomicU64::new(1);
static TICKS: AtomicU64 = AtomicU64::new(0);
static CONTEXT_SWITCHES: AtomicU64 = AtomicU64::new(0);
/// The running thread's user task, or null: set by [`reschedule`] and cleared by
/// [`take_current_task`], so that faults and system calls find their process without the
/// scheduler's lock (worth ~30 us per fault where ring 0 is emulated).
static CURRENT_TASK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Makes the running boot code thread 1 ("main") and creates the idle thread.
pub fn init() {
    let main = Box::new(Thread {
        tid: NEXT_TID.fetch_add(1, Ordering::Relaxed),
        context: Context::default(),
        fpu: Box::new_uninit(),
        fpu_saved: false,
        _stack: None,
        entry: None,
        wake_tick: 0,
        is_idle: false,
        process: None,
        next: None,
    });
    let idle = Thread::new(Start::Kernel(Box::new(idle_loop)), true)
        .expect("thread: no memory for the idle thread");
    let mut s = SCHED.lock();
    CURRENT_TID.store(main.tid, Ordering::Relaxed);
    s.current = Some(main);
    s.idle = Some(idle);
    s.slice_left = TIME_SLICE_TICKS;
}

/// Starts a thread running `f`; it is ready at once. Returns its id, or `None` if there is
/// no memory for the thread.
pub fn spawn(f: impl FnOnce() + Send + 'static) -> Option<Tid> {
    let thread = Thread::new(Start::Kernel(Box::new(f)), false)?;
    let tid = thread.tid;
    unblock(thread);
    Some(tid)
}

/// The running thread's id (0 before the threads start).
pub fn current_tid() -> Tid {
    CURRENT_TID.load(Ordering::Relaxed)
}

/// The id of `SCHED.current`, kept beside it so that reading it takes no lock: every
/// [`Lock`](crate::sync::Lock) asks for it (where ring 0 is emulated the scheduler's
/// lock cost a one-byte `read()` from the block cache about 5%).
static CURRENT_TID: AtomicU64 = AtomicU64::new(0);

/// Timer ticks since the timer started.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Context switches since boot.
pub fn context_switches() -> u64 {
    CONTEXT_SWITCHES.load(Ordering::Relaxed)
}

/// Makes a blocked thread ready (it runs when its turn comes).
pub fn unblock(thread: Box<Thread>) {
    SCHED.lock().ready.push_back(thread);
}

/// Gives the CPU to the next ready thread, if any; the caller stays ready.
pub fn yield_now() {
    reschedule(|s, me| {
        if me.is_idle {
            s.idle = Some(me);
        } else {
            s.ready.push_back(me);
        }
    });
}

/// Sleeps for at least `ticks` timer ticks (0 just yields).
pub fn sleep(ticks: u64) {
    if ticks == 0 {
        yield_now();
        return;
    }
    let wake = self::ticks() + ticks;
    reschedule(|s, mut me| {
        me.wake_tick = wake;
        let at = s.sleeping.partition_point(|t| t.wake_tick > wake);
        s.sleeping.insert(at, me);
    });
}

/// Blocks the running thread: hands its box to `park` (which puts it in some wait queue)
/// and runs another thread. Returns when someone passes the box to [`unblock`].
pub fn block(park: impl FnOnce(Box<Thread>)) {
    reschedule(|_, me| park(me));
}

/// Ends the running thread. Its stack is freed by the next thread to run.
pub fn exit() -> ! {
    reschedule(|s, me| s.dying = Some(me));
    unreachable!("thread: a dead thread was resumed");
}

/// Called by the timer interrupt handler (interrupts off): counts the tick and wakes
/// sleepers; returns whether the running thread's slice is over and another is ready (the
/// handler then calls [`yield_now`]).
pub fn tick_without_preemption() -> bool {
    let now = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    let mut s = SCHED.lock();
    while s.sleeping.last().is_some_and(|t| t.wake_tick <= now) {
        let woken = s.sleeping.pop().expect("checked non-empty");
        s.ready.push_back(woken);
    }
    let idle = s.current.as_ref().is_some_and(|t| t.is_idle);
    s.slice_left = s.slice_left.saturating_sub(1);
    !s.ready.is_empty() && (idle || s.slice_left == 0)
}

/// Switches from the running thread to the next ready one (or idle). `place` decides
/// where the running thread's box goes. Returns when the caller is resumed.
fn reschedule(place: impl FnOnce(&mut Scheduler, Box<Thread>)) {
    // Kernel code at CPL 3 switches through the fast mode's shim, from its events only.
    let at_cpl3 = platform::kernel_at_cpl3();
    assert!(
        !at_cpl3 || platform::switches_at_cpl3(),
        "thread: a thread switch from kernel code at CPL 3 outside an event"
    );
    let _irq = IrqGuard::new();
    let (from, to) = {
        let mut s = SCHED.lock();
        let mut me = s.current.take().expect("thread: no current thread");
        let from: *mut Thread = &raw mut *me;
        place(&mut s, me);
        let mut next = s
            .ready
            .pop_front()
            .or_else(|| s.idle.take())
            .expect("thread: nothing to run");
        let to: *mut Thread = &raw mut *next;
        let task = next
            .process
            .as_mut()
            .map_or(core::ptr::null_mut(), |t| (&raw mut **t).cast::<()>());
        CURRENT_TASK.store(task, Ordering::Relaxed);
        CURRENT_TID.store(next.tid, Ordering::Relaxed);
        s.current = Some(next);
        s.slice_left = TIME_SLICE_TICKS;
        (from, to)
    };
    if from != to {
        CONTEXT_SWITCHES.fetch_add(1, Ordering::Relaxed);
        crate::stats::bump(&crate::stats::page().context_switches);
        // SAFETY: `to` is `current` and its box stays put while it runs (see below).
        unsafe {
            if at_cpl3 {
                // Records the tables (the shim loads them); the entry stack changes in
                // ring 0, once the request that switches has arrived on this one.
                activate_tables(&*to);
            } else {
                enter_address_space(&*to);
            }
        }
        // SAFETY: both threads' boxes are owned by the scheduler's structures and never move
        // or drop while referenced here: `from` is suspended by this very switch and `to`
        // is `current`; interrupts are off for the whole switch.
        unsafe {
            context::save_fpu(&mut (*from).fpu);
            (*from).fpu_saved = true;
            let to_fpu = if (*to).fpu_saved {
                (*to).fpu.assume_init_ref()
            } else {
                &INITIAL_FPU
            };
            context::load_fpu(to_fpu);
            if at_cpl3 {
                let top = (*to)._stack.as_ref().map_or(0, Stack::top);
                platform::switch_threads_at_cpl3(
                    &raw mut (*from).context,
                    &raw const (*to).context,
                    top,
                );
            } else {
                context::switch(&raw mut (*from).context, &raw const (*to).context);
            }
        }
    }
    finish_switch();
}

/// Loads `thread`'s page tables (its process's, or the kernel's) if they are not loaded,
/// and makes its stack the one used on entry from user mode.
///
/// # Safety
/// `thread` must be the thread about to run, with interrupts off.
unsafe fn enter_address_space(thread: &Thread) {
    // SAFETY: the caller's contract.
    unsafe { activate_tables(thread) };
    if let Some(stack) = &thread._stack {
        platform::set_kernel_stack(stack.top());
    }
}

/// Loads `thread`'s page tables (its process's, or the kernel's) if they are not loaded
/// (at CPL 3: records them).
///
/// # Safety
/// As [`enter_address_space`].
unsafe fn activate_tables(thread: &Thread) {
    match &thread.process {
        Some(process) => process.activate(),
        None => crate::mm::page_table::activate_kernel_if_needed(),
    }
}

/// Starts a thread that runs `process`, beginning with kernel code `f` (which loads a
/// program and enters it; it does not return). On failure (no memory for the thread) the
/// process is handed back, so the caller can release what it holds.
pub fn spawn_process<T: UserTask>(
    process: Box<T>,
    f: impl FnOnce() + Send + 'static,
) -> Result<Tid, Box<T>> {
    start_process(process, Start::Kernel(Box::new(f)))
}

/// Starts a thread that runs `process` from user-mode `frame` (a forked child). On failure
/// the process is handed back, as by [`spawn_process`].
pub fn spawn_forked<T: UserTask>(process: Box<T>, frame: TrapFrame) -> Result<Tid, Box<T>> {
    start_process(process, Start::User(frame))
}

fn start_process<T: UserTask>(process: Box<T>, start: Start) -> Result<Tid, Box<T>> {
    let Some(mut thread) = Thread::new(start, false) else {
        return Err(process);
    };
    thread.process = Some(process);
    let tid = thread.tid;
    unblock(thread);
    Ok(tid)
}

/// The user task the running thread runs, if any, as a `T` (the one type of task: see
/// [`UserTask`]).
///
/// The reference is valid while the calling thread runs: the task belongs to the running
/// thread's box, which does not move or drop until the thread exits (and
/// [`take_current_task`] is the only other way to reach it).
#[inline(always)]
pub fn current_task<T: UserTask>() -> Option<&'static mut T> {
    let task = CURRENT_TASK.load(Ordering::Relaxed).cast::<T>();
    // SAFETY: `task` is null or the running thread's task (kept so by `reschedule` and
    // `take_current_task`, the only places the running thread or its task change), a `T`
    // because `T` is the one type of task (`UserTask`'s contract); see the function's
    // documentation for its lifetime. Only the running thread calls this for its own task,
    // so no other reference to it is live.
    unsafe { task.as_mut() }
}

/// Takes the running thread's user task away from it (at exit), as a `T` (the one type of
/// task: see [`UserTask`]).
pub fn take_current_task<T: UserTask>() -> Option<Box<T>> {
    let mut s = SCHED.lock();
    CURRENT_TASK.store(core::ptr::null_mut(), Ordering::Relaxed);
    let task: Box<dyn UserTask> = s.current.as_mut()?.process.take()?;
    // SAFETY: the box holds a `T`, the one type of task (`UserTask`'s contract); the raw
    // pointer comes from `Box::into_raw`, so `Box::from_raw` takes back the same allocation
    // with the same layout.
    Some(unsafe { Box::from_raw(Box::into_raw(task).cast::<T>()) })
}

/// Runs on the thread that was just switched to: frees the thread that exited, if any. In
/// the fast mode, when this runs in ring 0, the kernel at CPL 3 frees it at its next event
/// instead ([`bury_dead`]): in ring 0, freeing its boxes is emulated allocator work on PVM.
fn finish_switch() {
    let mut s = SCHED.lock();
    let Some(dying) = s.dying.take() else {
        return;
    };
    if platform::kernel_work_at_cpl3() && !platform::kernel_at_cpl3() {
        s.dead.push_back(dying);
    } else {
        drop(s);
        drop(dying);
    }
}

/// Frees the threads that ended since the last call (their stacks, saved state and boxes).
/// The fast mode's kernel calls it at each event at CPL 3.
pub fn bury_dead() {
    let mut dead = core::mem::take(&mut SCHED.lock().dead);
    while let Some(thread) = dead.pop_front() {
        drop(thread);
    }
}

/// First Rust code of every new thread.
extern "C" fn thread_start(thread: u64) -> ! {
    finish_switch();
    // SAFETY: `thread` is the address of this thread's own box, which is `current` now and
    // stays alive while the thread runs; only this thread touches `entry`.
    let entry = unsafe { (*(thread as *mut Thread)).entry.take() };
    match entry {
        Some(Entry::Kernel(f)) => {
            platform::enable_interrupts();
            f();
        }
        Some(Entry::User(frame)) => {
            // SAFETY: a user-mode frame (a copy of the parent's system-call frame) that
            // `Thread::new` put at the top of this thread's kernel stack, above everything
            // this thread has used; the scheduler installed that top as the ring-0 entry
            // stack; interrupts are still off from the switch.
            unsafe { platform::enter_user(&*(frame as *const TrapFrame)) }
        }
        None => {}
    }
    exit();
}

/// The idle thread: halts until an interrupt, then lets ready threads run.
fn idle_loop() {
    loop {
        let _irq = IrqGuard::new();
        if SCHED.lock().ready.is_empty() {
            // Atomically re-enables interrupts and halts: no wake-up can slip in between.
            platform::wait_for_interrupt();
        } else {
            yield_now();
        }
    }
}
