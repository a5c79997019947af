//! `vmm replay TRACE --frames N[,N...] [--json]`: a fault trace (`vmm run
//! --trace-faults`, see [`super::trace`]) replayed against the classic replacement
//! policies, to ask how far the kernel's own choice was from the optimum.
//!
//! The reference string is the trace's faults in order (a fault that killed its process
//! brought no page in and is left out): each is a reference to one page of one process.
//! A trace holds only the accesses that faulted in the traced run, not the ones that found
//! their page in memory, which no VMM sees; so the policies are compared on the same
//! string, and the fewer frames the traced run had, the closer that string is to every
//! access. Pages of a process are freed when it exits, and the old program's when it
//! execs (a page after exec is a new page, even at the same address). The simulated
//! memory starts empty, so every page's first reference is a fault under every policy.
//!
//! The policies: OPT (Belady: evict the page referenced again furthest in the future,
//! the fewest faults any policy can have on this string), LRU (the page referenced least
//! recently), clock (second chance: a reference sets a page's bit; the hand clears set
//! bits and evicts the first clear one), FIFO (the page loaded first) and random (a
//! resident page chosen by a fixed-seed generator, so results repeat).

use std::collections::{BTreeSet, HashMap, VecDeque};

use serde_json::Value;

/// The replacement policies, in report order.
pub const POLICIES: [Policy; 5] = [
    Policy::Opt,
    Policy::Lru,
    Policy::Clock,
    Policy::Fifo,
    Policy::Random,
];

/// A replacement policy to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Opt,
    Lru,
    Clock,
    Fifo,
    Random,
}

impl Policy {
    /// The name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Opt => "opt",
            Policy::Lru => "lru",
            Policy::Clock => "clock",
            Policy::Fifo => "fifo",
            Policy::Random => "random",
        }
    }
}

/// One step of the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A reference to page number `.0` (dense, from 0).
    Ref(u32),
    /// These pages are freed (their process exited, or exec replaced its program).
    Free(Vec<u32>),
}

/// A trace read for replay.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    pub steps: Vec<Step>,
    /// Distinct pages referenced.
    pub pages: usize,
    /// Distinct processes that faulted.
    pub processes: usize,
    /// Faults the kernel took that brought a page in (the references).
    pub kernel_faults: u64,
    /// The traced run's user frames (from the trace's last line), if known.
    pub user_frames: Option<u64>,
    /// The traced run's eviction policy (from its first line), if known.
    pub evict: Option<String>,
    /// Records the kernel dropped (the trace is incomplete if not 0).
    pub dropped: u64,
    /// Whether the trace has its last line (the run's end).
    pub complete: bool,
}

impl Trace {
    /// Reads a trace's JSON lines. An error names the line that is not a trace line.
    pub fn parse(text: &str) -> Result<Trace, String> {
        let mut trace = Trace::default();
        // (pid, generation, page) -> page number; generation counts a pid's execs.
        let mut ids: HashMap<(u64, u32, u64), u32> = HashMap::new();
        let mut generation: HashMap<u64, u32> = HashMap::new();
        let mut owned: HashMap<(u64, u32), Vec<u32>> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let bad = |what: &str| format!("line {}: {what}", i + 1);
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
            if v.get("trace").is_some() {
                trace.evict = v["evict"].as_str().map(str::to_string);
                continue;
            }
            if v.get("end").is_some() {
                trace.user_frames = v["user_frames"].as_u64();
                trace.dropped = v["dropped"].as_u64().unwrap_or(0);
                trace.complete = true;
                continue;
            }
            let pid = v["pid"]
                .as_u64()
                .ok_or_else(|| bad("not a trace record (no pid)"))?;
            let gen_now = *generation.entry(pid).or_default();
            if let Some(cause) = v.get("cause") {
                if cause == "kill" {
                    continue;
                }
                let page = v["page"]
                    .as_u64()
                    .ok_or_else(|| bad("a fault without a page"))?;
                let next = u32::try_from(ids.len()).map_err(|_| bad("too many pages"))?;
                let id = *ids.entry((pid, gen_now, page)).or_insert_with(|| {
                    owned.entry((pid, gen_now)).or_default().push(next);
                    next
                });
                trace.steps.push(Step::Ref(id));
                trace.kernel_faults += 1;
            } else if let Some(why) = v.get("release") {
                let pages = owned.remove(&(pid, gen_now)).unwrap_or_default();
                if why == "exec" {
                    generation.insert(pid, gen_now + 1);
                }
                if !pages.is_empty() {
                    trace.steps.push(Step::Free(pages));
                }
            } else if v.get("evict").is_none() {
                return Err(bad("not a fault, eviction or release record"));
            }
        }
        trace.pages = ids.len();
        trace.processes = generation.len();
        Ok(trace)
    }
}

/// Faults of `policy` with `frames` frames on `trace`'s string (0 frames: every reference
/// faults).
pub fn simulate(policy: Policy, trace: &Trace, frames: usize) -> u64 {
    let mut memory: Box<dyn Memory> = match policy {
        Policy::Opt => Box::new(Opt::new(&trace.steps, trace.pages)),
        Policy::Lru => Box::new(Lru::new(trace.pages)),
        Policy::Clock => Box::new(Clock::new(trace.pages, frames)),
        Policy::Fifo => Box::new(Fifo::new(trace.pages)),
        Policy::Random => Box::new(Random::new(trace.pages)),
    };
    let mut faults = 0;
    let mut resident = 0;
    for (at, step) in trace.steps.iter().enumerate() {
        match step {
            Step::Ref(page) => {
                if memory.touch(*page, at) {
                    continue;
                }
                faults += 1;
                if frames == 0 {
                    continue;
                }
                if resident == frames {
                    memory.evict();
                } else {
                    resident += 1;
                }
                memory.load(*page, at);
            }
            Step::Free(pages) => {
                for &page in pages {
                    if memory.free(page) {
                        resident -= 1;
                    }
                }
            }
        }
    }
    faults
}

/// A simulated memory under one policy. Pages are dense numbers below the trace's count.
trait Memory {
    /// A reference at step `at`: true if the page is resident (a hit).
    fn touch(&mut self, page: u32, at: usize) -> bool;
    /// Loads a page that is not resident, into a free frame.
    fn load(&mut self, page: u32, at: usize);
    /// Evicts the policy's victim (memory is full).
    fn evict(&mut self);
    /// Frees a page if it is resident; returns whether it was.
    fn free(&mut self, page: u32) -> bool;
}

/// Belady's OPT: the resident pages ordered by their next reference.
struct Opt {
    /// For each step, the step of the same page's next reference (`usize::MAX` for none).
    next: Vec<usize>,
    /// Resident pages as (next reference, page).
    by_next: BTreeSet<(usize, u32)>,
    /// Each page's key in `by_next`, if resident.
    key: Vec<Option<usize>>,
}

impl Opt {
    fn new(steps: &[Step], pages: usize) -> Self {
        let mut next = vec![usize::MAX; steps.len()];
        let mut seen = vec![usize::MAX; pages];
        for (at, step) in steps.iter().enumerate().rev() {
            if let Step::Ref(p) = step {
                next[at] = seen[*p as usize];
                seen[*p as usize] = at;
            }
        }
        Opt {
            next,
            by_next: BTreeSet::new(),
            key: vec![None; pages],
        }
    }
}

impl Memory for Opt {
    fn touch(&mut self, page: u32, at: usize) -> bool {
        let Some(old) = self.key[page as usize] else {
            return false;
        };
        self.by_next.remove(&(old, page));
        self.by_next.insert((self.next[at], page));
        self.key[page as usize] = Some(self.next[at]);
        true
    }

    fn load(&mut self, page: u32, at: usize) {
        self.by_next.insert((self.next[at], page));
        self.key[page as usize] = Some(self.next[at]);
    }

    fn evict(&mut self) {
        if let Some((_, page)) = self.by_next.pop_last() {
            self.key[page as usize] = None;
        }
    }

    fn free(&mut self, page: u32) -> bool {
        match self.key[page as usize].take() {
            Some(k) => self.by_next.remove(&(k, page)),
            None => false,
        }
    }
}

/// LRU: the resident pages ordered by their last reference.
struct Lru {
    by_last: BTreeSet<(usize, u32)>,
    last: Vec<Option<usize>>,
}

impl Lru {
    fn new(pages: usize) -> Self {
        Lru {
            by_last: BTreeSet::new(),
            last: vec![None; pages],
        }
    }
}

impl Memory for Lru {
    fn touch(&mut self, page: u32, at: usize) -> bool {
        let Some(old) = self.last[page as usize] else {
            return false;
        };
        self.by_last.remove(&(old, page));
        self.load(page, at);
        true
    }

    fn load(&mut self, page: u32, at: usize) {
        self.by_last.insert((at, page));
        self.last[page as usize] = Some(at);
    }

    fn evict(&mut self) {
        if let Some((_, page)) = self.by_last.pop_first() {
            self.last[page as usize] = None;
        }
    }

    fn free(&mut self, page: u32) -> bool {
        match self.last[page as usize].take() {
            Some(at) => self.by_last.remove(&(at, page)),
            None => false,
        }
    }
}

/// Clock: frames in a ring, a referenced bit each, a hand.
struct Clock {
    /// Each frame's page and referenced bit; `None` for a free frame.
    frames: Vec<Option<(u32, bool)>>,
    /// Each page's frame, if resident.
    frame_of: Vec<Option<usize>>,
    hand: usize,
    /// Frames freed by a release, to load into before any other.
    free: Vec<usize>,
    /// Frames never used yet (`frames[used..]`).
    used: usize,
}

impl Clock {
    fn new(pages: usize, frames: usize) -> Self {
        Clock {
            frames: vec![None; frames],
            frame_of: vec![None; pages],
            hand: 0,
            free: Vec::new(),
            used: 0,
        }
    }
}

impl Memory for Clock {
    fn touch(&mut self, page: u32, _at: usize) -> bool {
        let Some(f) = self.frame_of[page as usize] else {
            return false;
        };
        self.frames[f] = Some((page, true));
        true
    }

    fn load(&mut self, page: u32, _at: usize) {
        // A frame `evict` or a release emptied, else one never used (`simulate` loads
        // only with a frame free).
        let f = self.free.pop().unwrap_or_else(|| {
            self.used += 1;
            self.used - 1
        });
        self.frames[f] = Some((page, true));
        self.frame_of[page as usize] = Some(f);
    }

    fn evict(&mut self) {
        loop {
            let f = self.hand;
            match self.frames[f] {
                Some((page, true)) => self.frames[f] = Some((page, false)),
                Some((page, false)) => {
                    self.frames[f] = None;
                    self.frame_of[page as usize] = None;
                    self.free.push(f);
                    self.hand = (f + 1) % self.frames.len();
                    return;
                }
                None => {}
            }
            self.hand = (f + 1) % self.frames.len();
        }
    }

    fn free(&mut self, page: u32) -> bool {
        let Some(f) = self.frame_of[page as usize].take() else {
            return false;
        };
        self.frames[f] = None;
        self.free.push(f);
        true
    }
}

/// FIFO: pages in load order (freed ones skipped when they reach the front).
struct Fifo {
    queue: VecDeque<(u32, u64)>,
    /// Each resident page's load number (matches its queue entry); `None` if not resident.
    loaded: Vec<Option<u64>>,
    loads: u64,
}

impl Fifo {
    fn new(pages: usize) -> Self {
        Fifo {
            queue: VecDeque::new(),
            loaded: vec![None; pages],
            loads: 0,
        }
    }
}

impl Memory for Fifo {
    fn touch(&mut self, page: u32, _at: usize) -> bool {
        self.loaded[page as usize].is_some()
    }

    fn load(&mut self, page: u32, _at: usize) {
        self.loads += 1;
        self.queue.push_back((page, self.loads));
        self.loaded[page as usize] = Some(self.loads);
    }

    fn evict(&mut self) {
        while let Some((page, load)) = self.queue.pop_front() {
            if self.loaded[page as usize] == Some(load) {
                self.loaded[page as usize] = None;
                return;
            }
        }
    }

    fn free(&mut self, page: u32) -> bool {
        self.loaded[page as usize].take().is_some()
    }
}

/// Random: a resident page chosen by xorshift from a fixed seed.
struct Random {
    resident: Vec<u32>,
    /// Each page's index in `resident`, if resident.
    index: Vec<Option<usize>>,
    state: u64,
}

impl Random {
    fn new(pages: usize) -> Self {
        Random {
            resident: Vec::new(),
            index: vec![None; pages],
            state: 0x9e37_79b9_7f4a_7c15,
        }
    }

    fn remove_at(&mut self, i: usize) {
        let page = self.resident.swap_remove(i);
        self.index[page as usize] = None;
        if let Some(&moved) = self.resident.get(i) {
            self.index[moved as usize] = Some(i);
        }
    }
}

impl Memory for Random {
    fn touch(&mut self, page: u32, _at: usize) -> bool {
        self.index[page as usize].is_some()
    }

    fn load(&mut self, page: u32, _at: usize) {
        self.index[page as usize] = Some(self.resident.len());
        self.resident.push(page);
    }

    fn evict(&mut self) {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let n = self.resident.len() as u64;
        if n > 0 {
            self.remove_at((self.state % n) as usize);
        }
    }

    fn free(&mut self, page: u32) -> bool {
        match self.index[page as usize] {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }
}

/// One result: faults of `policy` (a simulated one, or `kernel` for the traced run's own
/// count) at `frames`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub policy: String,
    pub frames: u64,
    pub faults: u64,
}

/// Every policy at every frame count, then the kernel's own faults at the traced run's
/// frame count if the trace gives it.
pub fn rows(trace: &Trace, frames: &[u64]) -> Vec<Row> {
    let mut rows = Vec::new();
    for &n in frames {
        for policy in POLICIES {
            rows.push(Row {
                policy: policy.name().into(),
                frames: n,
                faults: simulate(policy, trace, usize::try_from(n).unwrap_or(usize::MAX)),
            });
        }
    }
    if let Some(n) = trace.user_frames {
        rows.push(Row {
            policy: "kernel".into(),
            frames: n,
            faults: trace.kernel_faults,
        });
    }
    rows
}

/// The rows as JSON: one object per row (`policy`, `frames`, `faults`; the kernel's row
/// also names its eviction policy as `evict`).
pub fn json(trace: &Trace, rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let mut v = serde_json::json!({
                    "policy": r.policy,
                    "frames": r.frames,
                    "faults": r.faults,
                });
                if r.policy == "kernel" {
                    v["evict"] = trace.evict.clone().into();
                }
                v
            })
            .collect(),
    )
}

/// The rows as a table: a line per frame count, a column per policy, and the kernel's own
/// count in the row of the traced run's frame count.
pub fn table(trace: &Trace, rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} references (the traced run's faults) to {} pages of {} process{}",
        trace.kernel_faults,
        trace.pages,
        trace.processes,
        if trace.processes == 1 { "" } else { "es" }
    );
    let kernel = rows.iter().find(|r| r.policy == "kernel");
    if let Some(k) = kernel {
        let _ = writeln!(
            out,
            "the kernel ({}) had {} frames",
            trace.evict.as_deref().unwrap_or("unknown policy"),
            k.frames
        );
    }
    let _ = write!(out, "{:>8}", "frames");
    for p in POLICIES {
        let _ = write!(out, " {:>8}", p.name());
    }
    let _ = writeln!(out, " {:>8}", "kernel");
    let mut frames: Vec<u64> = rows
        .iter()
        .filter(|r| r.policy != "kernel")
        .map(|r| r.frames)
        .collect();
    frames.dedup();
    for n in frames {
        let _ = write!(out, "{n:>8}");
        for p in POLICIES {
            let f = rows.iter().find(|r| r.frames == n && r.policy == p.name());
            let _ = write!(out, " {:>8}", f.map_or(0, |r| r.faults));
        }
        match kernel.filter(|k| k.frames == n) {
            Some(k) => {
                let _ = writeln!(out, " {:>8}", k.faults);
            }
            None => {
                let _ = writeln!(out, " {:>8}", "-");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trace of one process referencing `pages` in order.
    fn string(pages: &[u64]) -> Trace {
        let text: String = pages
            .iter()
            .map(|p| {
                format!(
                    "{{\"t_ns\":0,\"pid\":1,\"page\":{},\"cause\":\"zero\",\"ns\":1}}\n",
                    p * 4096
                )
            })
            .collect();
        Trace::parse(&text).expect("parses")
    }

    fn faults(policy: Policy, pages: &[u64], frames: usize) -> u64 {
        simulate(policy, &string(pages), frames)
    }

    /// The textbook string (Silberschatz et al., Operating System Concepts, ch. 10).
    const TEXTBOOK: [u64; 20] = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1];
    /// Belady's anomaly.
    const BELADY: [u64; 12] = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5];

    #[test]
    fn opt_lru_and_fifo_match_hand_counts() {
        assert_eq!(faults(Policy::Opt, &TEXTBOOK, 3), 9);
        assert_eq!(faults(Policy::Lru, &TEXTBOOK, 3), 12);
        assert_eq!(faults(Policy::Fifo, &TEXTBOOK, 3), 15);
        assert_eq!(faults(Policy::Opt, &BELADY, 3), 7);
        assert_eq!(faults(Policy::Opt, &BELADY, 4), 6);
        assert_eq!(faults(Policy::Lru, &BELADY, 3), 10);
        assert_eq!(faults(Policy::Lru, &BELADY, 4), 8);
        // Belady's anomaly: FIFO faults more with more frames.
        assert_eq!(faults(Policy::Fifo, &BELADY, 3), 9);
        assert_eq!(faults(Policy::Fifo, &BELADY, 4), 10);
    }

    #[test]
    fn clock_matches_a_hand_count() {
        // 3 frames, a page's bit set when it loads and when it is referenced:
        // 1 2 3 load (3 faults); 1 hits; 4: the hand clears 1, 2 and 3 and comes round to
        // evict 1 -> [4 2 3]; 1: 2's bit is clear, 2 goes -> [4 1 3]; 2: 3 goes ->
        // [4 1 2]; 1 hits; 5: every bit is set, the hand clears them all and 4 goes.
        assert_eq!(faults(Policy::Clock, &[1, 2, 3, 1, 4, 1, 2, 1, 5], 3), 7);
        // With memory for everything, only first references fault.
        assert_eq!(faults(Policy::Clock, &TEXTBOOK, 8), 6);
    }

    #[test]
    fn zero_frames_fault_on_every_reference_and_enough_frames_only_once_per_page() {
        for policy in POLICIES {
            assert_eq!(faults(policy, &TEXTBOOK, 0), 20, "{policy:?}");
            assert_eq!(faults(policy, &TEXTBOOK, 6), 6, "{policy:?}");
            assert_eq!(faults(policy, &TEXTBOOK, 1000), 6, "{policy:?}");
        }
    }

    #[test]
    fn opt_is_never_beaten() {
        // Property: on any string, at any frame count, no policy faults less than OPT.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for case in 0..400 {
            let len = 1 + next(200) as usize;
            let distinct = 1 + next(30);
            let pages: Vec<u64> = (0..len).map(|_| next(distinct)).collect();
            let trace = string(&pages);
            for frames in 1..=12 {
                let opt = simulate(Policy::Opt, &trace, frames);
                for policy in POLICIES {
                    let other = simulate(policy, &trace, frames);
                    assert!(
                        opt <= other,
                        "case {case}: OPT {opt} > {policy:?} {other} with {frames} frames on {pages:?}"
                    );
                    assert!(other as usize <= len && other >= trace.pages as u64);
                }
            }
        }
    }

    #[test]
    fn exit_frees_pages_and_exec_makes_new_ones() {
        let text = r#"{"trace":"faults","evict":"fifo"}
{"t_ns":1,"pid":1,"page":4096,"cause":"file","ns":5}
{"t_ns":2,"pid":2,"page":4096,"cause":"cow","ns":5}
{"t_ns":3,"pid":2,"page":8192,"cause":"kill","ns":5}
{"t_ns":4,"pid":2,"release":"exit"}
{"t_ns":5,"pid":1,"evict":4096,"to":"drop"}
{"t_ns":6,"pid":1,"release":"exec"}
{"t_ns":7,"pid":1,"page":4096,"cause":"file","ns":5}
{"end":true,"records":7,"dropped":0,"user_frames":2,"faults":4}
"#;
        let trace = Trace::parse(text).expect("parses");
        assert_eq!(
            trace.steps,
            [
                Step::Ref(0),
                Step::Ref(1),
                Step::Free(vec![1]),
                Step::Free(vec![0]),
                Step::Ref(2)
            ]
        );
        assert_eq!(
            (trace.pages, trace.processes, trace.kernel_faults),
            (3, 2, 3)
        );
        assert_eq!(trace.user_frames, Some(2));
        assert_eq!(trace.evict.as_deref(), Some("fifo"));
        assert!(trace.complete);
        // One frame is enough: each page is freed before the next one comes.
        for policy in POLICIES {
            assert_eq!(simulate(policy, &trace, 1), 3, "{policy:?}");
        }
        let rows = rows(&trace, &[1, 2]);
        assert_eq!(rows.len(), 11);
        assert_eq!(
            rows.last(),
            Some(&Row {
                policy: "kernel".into(),
                frames: 2,
                faults: 3
            })
        );
        let doc = json(&trace, &rows);
        assert_eq!(
            doc[0],
            serde_json::json!({"policy":"opt","frames":1,"faults":3})
        );
        assert_eq!(doc[10]["evict"], "fifo");
        let text = table(&trace, &rows);
        assert!(
            text.contains("       2        3        3        3        3        3        3\n"),
            "{text}"
        );
        assert!(
            text.contains("       1        3        3        3        3        3        -\n"),
            "{text}"
        );
    }

    #[test]
    fn lines_that_are_not_records_are_refused_by_number() {
        assert_eq!(
            Trace::parse("{\"t_ns\":1}\n"),
            Err("line 1: not a trace record (no pid)".into())
        );
        assert!(
            Trace::parse("\n{\"pid\":1,\"x\":2}")
                .expect_err("no kind")
                .starts_with("line 2: not a fault")
        );
        assert!(
            Trace::parse("nope")
                .expect_err("not JSON")
                .starts_with("line 1: ")
        );
    }
}
