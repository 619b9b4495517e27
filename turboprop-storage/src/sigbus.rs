//! Surviving a mapped file that shrinks under its reader (issue 13, finding 8).
//!
//! Index files are read in place through memory maps ([`crate::FileBytes`]). If another
//! program truncates a mapped file (a sync tool, `rsync --inplace`, `cp` over `.turboprop/`,
//! which truncates before it writes), reading a page past the new end raises `SIGBUS`, which
//! kills the process. This module turns that fault into an error the reader can report.
//!
//! # Design
//!
//! - **A registry of live mappings**: a static array of [`SLOTS`] slots of atomics (start,
//!   length, a "faulted" flag, and a sequence number that is odd while the slot changes). A
//!   mapping claims a free slot with a compare-and-swap before it is made, publishes its
//!   address once made, and releases the slot when dropped, before it is unmapped. Nothing
//!   here locks or allocates. When every slot is taken, [`crate::FileBytes`] reads the file
//!   into the heap instead (correct and immune to truncation, only slower to open; an index
//!   has ~10 mappings per segment, so this takes over a thousand live segments).
//! - **A `SIGBUS` handler**, installed once (`sigaction` with `SA_SIGINFO | SA_ONSTACK`) when
//!   the first slot is claimed. On a fault of a page past the end of a file (`BUS_ADRERR`)
//!   whose address lies in a registered mapping, it maps anonymous zero pages over the
//!   mapping from the faulting page to its end (`MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS`,
//!   read-only), sets the slot's faulted flag, counts the fault, and returns: the faulting
//!   load runs again and reads zeros. The handler uses only atomics and raw system calls
//!   (`mmap`, `sigaction`), and saves and restores `errno`.
//! - **Any other `SIGBUS`** (an address that is not in a registered mapping, a hardware
//!   memory error, a signal sent with `kill`) goes to the handler that was installed before
//!   ours (the Rust runtime's stack-overflow handler, which then restores the default and
//!   returns), or, when that was the default or "ignore", the default is restored and the
//!   handler returns, so the fault happens again and kills the process as it would have
//!   without us. Foreign faults are never swallowed.
//! - **Detection**: a faulted mapping stays faulted (zeros past the faulting page) for as long
//!   as it lives. Readers ask [`crate::FileBytes::check_intact`] (one atomic load) after they
//!   have read, and report [`crate::StorageError::ChangedUnderReader`] instead of a result
//!   computed from zeros. [`FaultWatch`] makes the common case cheaper still: one load of the
//!   process-wide fault count tells whether any mapping has faulted since a point in time.
//!
//! # Limits
//!
//! - Linux only. Elsewhere mappings are made unregistered, as before: a truncation there
//!   still kills the reader.
//! - A file rewritten in place *without* shrinking (same length, other bytes) raises no fault
//!   and is not detected here; the checksums of `tp verify` are what find it.
//! - Pages read before the truncation, and pages below the faulting one, keep whatever the
//!   file holds when they are read; the faulted flag says the whole result is untrustworthy.
//! - A program embedding turboprop that later replaces the `SIGBUS` handler without chaining
//!   to ours loses this protection.
#![allow(unsafe_code)]

#[cfg(target_os = "linux")]
pub(crate) use linux::Slot;
#[cfg(not(target_os = "linux"))]
pub(crate) use other::Slot;

use std::sync::atomic::{AtomicU64, Ordering};

/// Number of mappings that can be registered at once.
pub const SLOTS: usize = 16_384;

/// Faults turned into zero pages since the process started.
static FAULTS: AtomicU64 = AtomicU64::new(0);

/// A point in time to ask "has any mapping of this process faulted since?" with one atomic
/// load. A reader starts one before it maps its files; while [`FaultWatch::faulted_since`]
/// is false, none of them can have faulted, and no per-file check is needed.
///
/// ```
/// use turboprop_storage::{FaultWatch, FileBytes, ReadMode};
///
/// let tmp = tempfile::tempdir()?;
/// let path = tmp.path().join("vectors.bin");
/// std::fs::write(&path, vec![7u8; 3 * 4096])?;
/// let watch = FaultWatch::start();
/// let bytes = FileBytes::open(&path, ReadMode::Mmap)?;
/// assert_eq!(bytes.bytes()[5000], 7);
/// assert!(!watch.faulted_since());
/// bytes.check_intact()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultWatch {
    at: u64,
}

impl FaultWatch {
    /// Starts watching: remembers the process's fault count now.
    pub fn start() -> FaultWatch {
        FaultWatch {
            at: FAULTS.load(Ordering::SeqCst),
        }
    }

    /// Whether any registered mapping of the process (of any file, any index) faulted since
    /// [`FaultWatch::start`]. When true, ask each file ([`crate::FileBytes::check_intact`]).
    pub fn faulted_since(&self) -> bool {
        FAULTS.load(Ordering::SeqCst) != self.at
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! The registry and the handler (Linux).

    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
    use std::sync::Once;

    use super::{FAULTS, SLOTS};

    /// One registered mapping. `seq` is odd while the slot is being claimed, published or
    /// released; a slot is free when `seq` is even and `len` is 0.
    struct Entry {
        seq: AtomicU64,
        start: AtomicUsize,
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    static REGISTRY: [Entry; SLOTS] = [const {
        Entry {
            seq: AtomicU64::new(0),
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            faulted: AtomicBool::new(false),
        }
    }; SLOTS];
    /// One past the highest slot ever claimed: the handler scans no further.
    static HIGH: AtomicUsize = AtomicUsize::new(0);
    /// The page size, read once when the handler is installed.
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    /// Whether our handler is in place.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The handler before ours (`sa_sigaction`) and its flags, to chain to.
    static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
    static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);
    static INSTALL: Once = Once::new();

    /// A claimed slot of the registry; released (before the mapping is unmapped) on drop.
    #[derive(Debug)]
    pub(crate) struct Slot {
        index: usize,
    }

    impl Slot {
        /// Claims a free slot for a mapping about to be made, installing the handler on
        /// first use. `None` when every slot is taken or the handler cannot be installed:
        /// then the file must not be mapped.
        pub(crate) fn claim() -> Option<Slot> {
            INSTALL.call_once(install);
            if !INSTALLED.load(Ordering::SeqCst) {
                return None;
            }
            for (index, entry) in REGISTRY.iter().enumerate() {
                let seq = entry.seq.load(Ordering::SeqCst);
                if seq % 2 == 1 || entry.len.load(Ordering::SeqCst) != 0 {
                    continue;
                }
                // The sequence only grows, so an unchanged one means the slot stayed free.
                if entry
                    .seq
                    .compare_exchange(seq, seq + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    HIGH.fetch_max(index + 1, Ordering::SeqCst);
                    return Some(Slot { index });
                }
            }
            None
        }

        /// Records the mapping at `start`, `len` bytes long (`len` > 0), as live.
        pub(crate) fn publish(&self, start: *const u8, len: usize) {
            let entry = &REGISTRY[self.index];
            entry.start.store(start as usize, Ordering::SeqCst);
            entry.len.store(len, Ordering::SeqCst);
            entry.faulted.store(false, Ordering::SeqCst);
            entry.seq.fetch_add(1, Ordering::SeqCst);
        }

        /// Whether a read of the mapping faulted (and read zeros).
        pub(crate) fn faulted(&self) -> bool {
            REGISTRY[self.index].faulted.load(Ordering::Acquire)
        }
    }

    impl Drop for Slot {
        fn drop(&mut self) {
            let entry = &REGISTRY[self.index];
            let seq = entry.seq.load(Ordering::SeqCst);
            // Claimed but never published: the sequence is still odd.
            if seq.is_multiple_of(2) {
                entry.seq.fetch_add(1, Ordering::SeqCst);
            }
            entry.len.store(0, Ordering::SeqCst);
            entry.start.store(0, Ordering::SeqCst);
            entry.faulted.store(false, Ordering::SeqCst);
            entry.seq.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Installs the handler, remembering the one before it.
    fn install() {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let Ok(page) = usize::try_from(page) else {
            return;
        };
        if !page.is_power_of_two() {
            return;
        }
        PAGE.store(page, Ordering::SeqCst);
        // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty mask, no flags);
        // sigaction reads `action` and writes `previous`, both valid for the call.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return;
            }
            PREVIOUS_HANDLER.store(previous.sa_sigaction, Ordering::SeqCst);
            PREVIOUS_FLAGS.store(previous.sa_flags as usize, Ordering::SeqCst);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0 {
                INSTALLED.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The registered mapping holding `addr`: (slot, start, end rounded up to a page).
    fn find(addr: usize, page: usize) -> Option<(&'static Entry, usize, usize)> {
        let high = HIGH.load(Ordering::SeqCst).min(SLOTS);
        for entry in &REGISTRY[..high] {
            let before = entry.seq.load(Ordering::SeqCst);
            if before % 2 == 1 {
                // Changing: not the faulting mapping, which is live while it is read.
                continue;
            }
            let len = entry.len.load(Ordering::SeqCst);
            let start = entry.start.load(Ordering::SeqCst);
            if len == 0 || entry.seq.load(Ordering::SeqCst) != before {
                continue;
            }
            let end = start.saturating_add(len).saturating_add(page - 1) & !(page - 1);
            if (start..end).contains(&addr) {
                return Some((entry, start, end));
            }
        }
        None
    }

    /// The `SIGBUS` handler. Async-signal-safe: atomics and raw system calls only.
    extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
        // SAFETY: errno is thread-local and always valid to read and write.
        let errno = unsafe { *libc::__errno_location() };
        if !recover(info) {
            forward(signal, info, context);
        }
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = errno };
    }

    /// Replaces the faulting part of a registered mapping with zero pages; false when the
    /// fault is not ours (or cannot be repaired).
    fn recover(info: *mut libc::siginfo_t) -> bool {
        if info.is_null() {
            return false;
        }
        // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO; si_addr is the
        // faulting address for the fault codes (checked first).
        let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
        if code != libc::BUS_ADRERR {
            return false;
        }
        let page = PAGE.load(Ordering::SeqCst);
        if page == 0 {
            return false;
        }
        let Some((entry, _start, end)) = find(addr, page) else {
            return false;
        };
        let from = addr & !(page - 1);
        // SAFETY: [from, end) lies inside a live mapping of ours (its slot is published and
        // it cannot be unmapped while a thread reads it), so MAP_FIXED replaces only our own
        // pages, with read-only zero pages; no Rust reference is invalidated, the bytes
        // only change to zeros, as a truncated file reads past its end.
        let mapped = unsafe {
            libc::mmap(
                from as *mut c_void,
                end - from,
                libc::PROT_READ,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if mapped == libc::MAP_FAILED {
            return false;
        }
        entry.faulted.store(true, Ordering::SeqCst);
        FAULTS.fetch_add(1, Ordering::SeqCst);
        true
    }

    /// Hands a fault that is not ours to the handler before ours, or restores the default
    /// and returns, so the fault happens again and ends the process as it would without us.
    fn forward(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
        let previous = PREVIOUS_HANDLER.load(Ordering::SeqCst);
        let flags = PREVIOUS_FLAGS.load(Ordering::SeqCst) as libc::c_int;
        if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
            // SAFETY: an all-zero sigaction is SIG_DFL with an empty mask; sigaction is
            // async-signal-safe.
            unsafe {
                let default: libc::sigaction = std::mem::zeroed();
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        } else if flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
            // signature; it gets the arguments the kernel gave us.
            unsafe {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    std::mem::transmute(previous);
                f(signal, info, context);
            }
        } else {
            // SAFETY: without SA_SIGINFO the previous handler takes the signal number only.
            unsafe {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(previous);
                f(signal);
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod other {
    //! Elsewhere: no registry; mappings are made unregistered, as before this module.

    /// A placeholder slot: never faulted.
    #[derive(Debug)]
    pub(crate) struct Slot;

    impl Slot {
        /// Always succeeds: the mapping is made, unprotected.
        pub(crate) fn claim() -> Option<Slot> {
            Some(Slot)
        }

        /// Nothing to record.
        pub(crate) fn publish(&self, _start: *const u8, _len: usize) {}

        /// Never: faults are not caught here.
        pub(crate) fn faulted(&self) -> bool {
            false
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::path::Path;
    use std::process::{Command, ExitStatus};

    use super::*;
    use crate::{FileBytes, ReadMode};

    const PAGE: usize = 4096;

    /// Six pages of non-zero bytes.
    fn content() -> Vec<u8> {
        (0..6 * PAGE).map(|i| (i % 251) as u8 + 1).collect()
    }

    /// Maps `path` (holding [`content`]), shrinks the file to `new_len` with `shrink`, then
    /// reads every byte of the mapping: no signal, the file's bytes up to its new end, zeros
    /// past it, and the typed error naming the file.
    fn read_after_shrinking(name: &str, new_len: usize, shrink: impl FnOnce(&Path)) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join(name);
        let original = content();
        fs::write(&path, &original).expect("write");
        let bytes = FileBytes::open(&path, ReadMode::Mmap).expect("open");
        assert!(bytes.is_mapped());
        assert_eq!(bytes.bytes(), &original[..]);
        bytes.check_intact().expect("intact before the truncation");
        let watch = FaultWatch::start();

        shrink(&path);

        let seen: Vec<u8> = bytes.bytes().to_vec();
        assert_eq!(seen.len(), original.len(), "the mapping keeps its length");
        assert_eq!(
            &seen[..new_len],
            &original[..new_len],
            "bytes before the new end"
        );
        assert!(
            seen[new_len..].iter().all(|&b| b == 0),
            "bytes past the new end read as zeros"
        );
        let err = bytes.check_intact().expect_err("the change is reported");
        assert!(err.is_changed_under_reader(), "{err}");
        assert!(!err.is_damage(), "{err}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("tp verify"), "{message}");
        assert!(watch.faulted_since());
        // Other mappings are untouched.
        let other = tmp.path().join("other.bin");
        fs::write(&other, &original).expect("write");
        let fresh = FileBytes::open(&other, ReadMode::Mmap).expect("open");
        assert_eq!(fresh.bytes(), &original[..]);
        fresh.check_intact().expect("another file is intact");
    }

    fn set_len(path: &Path, len: usize) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .expect("open for writing")
            .set_len(len as u64)
            .expect("truncate");
    }

    #[test]
    fn a_mapping_truncated_to_zero_reads_zeros_and_reports_the_file() {
        read_after_shrinking("vectors.bin", 0, |p| set_len(p, 0));
    }

    #[test]
    fn a_mapping_truncated_to_half_reads_zeros_past_the_new_end() {
        // Not on a page boundary: the page holding the new end reads the file, then zeros.
        let half = 5 * PAGE / 2 + 123;
        read_after_shrinking("chunks.bin", half, |p| set_len(p, half));
    }

    #[test]
    fn a_mapping_truncated_and_partly_rewritten_reads_what_is_there_then_zeros() {
        // `cp` over the file: O_TRUNC, then writing; caught after the first page.
        let original = content();
        read_after_shrinking("files.bin", PAGE, |p| {
            let mut f = OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(p)
                .expect("open with O_TRUNC");
            f.write_all(&original[..PAGE]).expect("write back");
        });
    }

    #[test]
    fn heap_reads_are_always_intact() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("paths.bin");
        fs::write(&path, content()).expect("write");
        let bytes = FileBytes::open(&path, ReadMode::Heap).expect("open");
        set_len(&path, 0);
        assert_eq!(bytes.bytes(), &content()[..]);
        bytes.check_intact().expect("a heap copy cannot change");
    }

    /// The environment variable that makes a test of this binary the child of another.
    const CHILD: &str = "TURBOPROP_SIGBUS_TEST_CHILD";

    /// Runs this test binary's test `name` alone, as the child of the calling test.
    fn run_child(name: &str) -> (ExitStatus, String) {
        let exe = std::env::current_exe().expect("test binary");
        let out = Command::new(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, name)
            .output()
            .expect("run the child");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn is_child(name: &str) -> bool {
        std::env::var(CHILD).is_ok_and(|v| v == name)
    }

    const FOREIGN: &str = "sigbus::tests::child_reads_a_truncated_foreign_mapping";

    /// In the child only: with the handler installed (a registered mapping is live), reads a
    /// truncated mapping made outside the registry. Must die by SIGBUS.
    #[test]
    fn child_reads_a_truncated_foreign_mapping() {
        if !is_child(FOREIGN) {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let ours = tmp.path().join("ours.bin");
        fs::write(&ours, content()).expect("write");
        let registered = FileBytes::open(&ours, ReadMode::Mmap).expect("open");
        assert!(registered.is_mapped(), "the handler is installed");
        let foreign = tmp.path().join("foreign.bin");
        fs::write(&foreign, content()).expect("write");
        let file = fs::File::open(&foreign).expect("open");
        // SAFETY: the test truncates the file on purpose: this read must fault.
        let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
        set_len(&foreign, 0);
        let byte = std::hint::black_box(&map[..])[3 * PAGE];
        eprintln!("survived a foreign fault, read {byte}");
    }

    #[test]
    fn a_fault_outside_our_mappings_still_kills_by_sigbus() {
        if std::env::var(CHILD).is_ok() {
            return;
        }
        let (status, stderr) = run_child(FOREIGN);
        assert_eq!(
            status.signal(),
            Some(libc::SIGBUS),
            "the child must die by SIGBUS, not {status:?}: {stderr}"
        );
        assert!(!stderr.contains("survived"), "{stderr}");
    }

    const FULL: &str = "sigbus::tests::child_fills_the_registry";

    /// In the child only: takes every slot, then opens one more file, which must be read
    /// into the heap (and be correct); once a slot is free again, files are mapped again.
    #[test]
    fn child_fills_the_registry() {
        if !is_child(FULL) {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("f.bin");
        fs::write(&path, content()).expect("write");
        let mut open = Vec::with_capacity(SLOTS);
        loop {
            let bytes = FileBytes::open(&path, ReadMode::Mmap).expect("open");
            if !bytes.is_mapped() {
                assert_eq!(
                    open.len(),
                    SLOTS,
                    "heap reads only when every slot is taken"
                );
                assert_eq!(bytes.bytes(), &content()[..]);
                break;
            }
            open.push(bytes);
        }
        open.pop();
        assert!(FileBytes::open(&path, ReadMode::Mmap)
            .expect("open")
            .is_mapped());
        eprintln!("registry ok");
    }

    #[test]
    fn a_full_registry_reads_files_into_the_heap() {
        if std::env::var(CHILD).is_ok() {
            return;
        }
        let (status, stderr) = run_child(FULL);
        assert!(status.success(), "{status:?}: {stderr}");
        assert!(stderr.contains("registry ok"), "{stderr}");
    }
}
