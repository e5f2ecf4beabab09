//! The shared segment itself, and every `unsafe` line of the shared-memory
//! path: a sealed `memfd` mapped into the orchestrator and one child host,
//! accessed only through atomics of one fixed size per location and volatile
//! copies, never through a reference into the mapping (the child may write
//! any byte at any time). Plus the futex calls and the hand-over of the fd to
//! the child at spawn.
//!
//! Layout: a 4096-byte header, then the data of the two rings. The header has
//! one 64-byte line per word (no false sharing between the two sides): line 0
//! holds the magic, version and capacity; each ring has six lines after it;
//! line 13 holds the child's note of the replies it handled.

#![allow(unsafe_code)]

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// The fd number the child host finds its segment on.
pub const CHILD_FD: RawFd = 3;

const MAGIC: u64 = u64::from_le_bytes(*b"ORCHRNG1");
const VERSION: u32 = 1;
const HEADER: usize = 4096;
const LINE: usize = 64;

/// The two rings of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Orchestrator → child: events and lifecycle requests.
    Down = 0,
    /// Child → orchestrator: replies, publishes, subscriptions.
    Up = 1,
}

/// The 64-bit counters of a ring: bytes ever written and ever read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Counter {
    /// Bytes ever written (the producer's).
    Tail = 0,
    /// Bytes ever read (the consumer's).
    Head = 1,
}

/// The 32-bit wake-up words of a ring.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Word {
    /// Bumped when data was written to a sleeping consumer (its futex).
    DataSeq = 2,
    /// 1 while the consumer sleeps (or is about to).
    ConsumerSleeping = 3,
    /// Bumped when space was freed for a sleeping producer (its futex).
    SpaceSeq = 4,
    /// 1 while the producer sleeps (or is about to).
    ProducerSleeping = 5,
}

/// A mapped segment. Dropping it unmaps it; the kernel frees the memory once
/// the other side's mapping is gone too (the memfd has no name anywhere).
#[derive(Debug)]
pub(crate) struct Segment {
    base: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: the mapping is only ever accessed through atomics and volatile
// copies, which are sound from any thread; `base` is never handed out.
unsafe impl Send for Segment {}
// SAFETY: as above: no `&`-reference to the mapped bytes exists, so shared use
// from many threads cannot create aliasing references.
unsafe impl Sync for Segment {}

impl Segment {
    /// Creates a segment with two rings of `cap` bytes each (a power of two),
    /// sealed so that neither side can change its size: the child can never
    /// make the orchestrator's accesses fault (`SIGBUS`).
    pub(crate) fn create(name: &str, cap: usize) -> std::io::Result<(Self, OwnedFd)> {
        if !cap.is_power_of_two() || u32::try_from(cap).is_err() {
            return Err(std::io::Error::other(format!(
                "ring capacity {cap} is not a power of two below 4 GiB"
            )));
        }
        let fd = memfd_create(
            memfd_name(name).as_str(),
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        let len = HEADER + 2 * cap;
        nix::unistd::ftruncate(&fd, i64::try_from(len).map_err(std::io::Error::other)?)?;
        let seals = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL;
        fcntl(&fd, FcntlArg::F_ADD_SEALS(seals))?;
        let segment = Self::map(&fd, len, cap)?;
        segment
            .word64_at(0)
            .store(MAGIC, std::sync::atomic::Ordering::Relaxed);
        let version_and_cap = u64::from(VERSION) | (u64::try_from(cap).unwrap_or(0) << 32);
        segment
            .word64_at(8)
            .store(version_and_cap, std::sync::atomic::Ordering::Release);
        Ok((segment, fd))
    }

    /// The child's side: maps the segment inherited on [`CHILD_FD`], checks
    /// its header and seals, and closes the fd (the mapping stays), so no
    /// process the module starts inherits it.
    pub(crate) fn open_inherited() -> std::io::Result<Self> {
        // SAFETY: the orchestrator put the segment on this fd before exec and
        // nothing in this process has used the number yet (it is not CLOEXEC,
        // so it came through exec); ownership is taken exactly once, here.
        let fd = unsafe { OwnedFd::from_raw_fd(CHILD_FD) };
        let seals = fcntl(&fd, FcntlArg::F_GET_SEALS)?;
        let wanted = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW;
        if !SealFlag::from_bits_truncate(seals).contains(wanted) {
            return Err(std::io::Error::other("fd 3 is not a sealed segment"));
        }
        let size = nix::sys::stat::fstat(&fd)?.st_size;
        let len = usize::try_from(size).map_err(std::io::Error::other)?;
        if len <= HEADER {
            return Err(std::io::Error::other("fd 3 is too small for a segment"));
        }
        let header = Self::map(&fd, HEADER, 0)?;
        let magic = header
            .word64_at(0)
            .load(std::sync::atomic::Ordering::Acquire);
        let version_and_cap = header
            .word64_at(8)
            .load(std::sync::atomic::Ordering::Acquire);
        drop(header);
        let cap = usize::try_from(version_and_cap >> 32).map_err(std::io::Error::other)?;
        if magic != MAGIC
            || version_and_cap & 0xffff_ffff != u64::from(VERSION)
            || !cap.is_power_of_two()
            || len != HEADER + 2 * cap
        {
            return Err(std::io::Error::other(
                "fd 3 holds no segment of this orchestrator's version",
            ));
        }
        Self::map(&fd, len, cap)
    }

    fn map(fd: &OwnedFd, len: usize, cap: usize) -> std::io::Result<Self> {
        let length =
            NonZeroUsize::new(len).ok_or_else(|| std::io::Error::other("empty segment"))?;
        // SAFETY: a fresh shared mapping of a file we hold; no Rust object
        // lives at the address it returns, and it stays mapped until `Drop`.
        let base = unsafe {
            mmap(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                fd.as_fd(),
                0,
            )?
        };
        Ok(Self {
            base: base.cast(),
            len,
            cap,
        })
    }

    /// The capacity of each ring, in bytes (a power of two).
    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    #[inline]
    fn word64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset.is_multiple_of(8) && offset + 8 <= HEADER.min(self.len));
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned);
        // `AtomicU64` is an `UnsafeCell`, so the other process writing it
        // concurrently is allowed; the mapping outlives `&self`.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    #[inline]
    fn word32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset.is_multiple_of(4) && offset + 4 <= HEADER.min(self.len));
        // SAFETY: as for `word64_at`, with 4-byte alignment.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(offset).cast()) }
    }

    #[inline]
    fn line(side: Side, index: usize) -> usize {
        (1 + side as usize * 6 + index) * LINE
    }

    /// A ring's byte counter.
    #[inline]
    pub(crate) fn counter(&self, side: Side, counter: Counter) -> &AtomicU64 {
        self.word64_at(Self::line(side, counter as usize))
    }

    /// The child's note of the last reply it handled (line 13; see
    /// [`super::Producer::note_handled`]).
    #[inline]
    pub(crate) fn handled_note(&self) -> &AtomicU64 {
        self.word64_at(13 * LINE)
    }

    /// A ring's wake-up word.
    #[inline]
    pub(crate) fn word(&self, side: Side, word: Word) -> &AtomicU32 {
        self.word32_at(Self::line(side, word as usize))
    }

    /// The bounds of `side`'s data at `offset` for `len` bytes; clamped so a
    /// wrong call can never leave the ring (offsets come from our own
    /// counters, never from the segment).
    #[inline]
    fn data_ptr(&self, side: Side, offset: usize, len: usize) -> (*mut u8, usize) {
        let offset = offset & (self.cap - 1);
        let len = len.min(self.cap - offset);
        let start = HEADER + side as usize * self.cap + offset;
        // SAFETY: `start + len <= HEADER + (side + 1) * cap <= self.len`.
        (unsafe { self.base.as_ptr().add(start) }, len)
    }

    /// Copies `dst.len()` bytes (at most to the ring's end) out of `side`'s
    /// data at `offset`, with volatile reads: the child may be writing them,
    /// and only the copy is ever parsed. Returns how many were copied.
    #[inline]
    pub(crate) fn copy_out(&self, side: Side, offset: usize, dst: &mut [u8]) -> usize {
        let (src, len) = self.data_ptr(side, offset, dst.len());
        // Bytes up to an 8-byte boundary, then whole aligned words (the
        // rings start page-aligned), then the last bytes.
        let lead = src.align_offset(8).min(len);
        let words = (len - lead) / 8;
        for (i, byte) in dst[..lead].iter_mut().enumerate() {
            // SAFETY: `src..src + len` is inside the mapping (`data_ptr`).
            *byte = unsafe { src.add(i).read_volatile() };
        }
        for w in 0..words {
            let at = lead + 8 * w;
            // SAFETY: in the mapping as above, and 8-aligned by `lead`.
            let word = unsafe { src.add(at).cast::<u64>().read_volatile() };
            dst[at..at + 8].copy_from_slice(&word.to_ne_bytes());
        }
        for (i, byte) in dst.iter_mut().enumerate().take(len).skip(lead + 8 * words) {
            // SAFETY: in the mapping as above.
            *byte = unsafe { src.add(i).read_volatile() };
        }
        len
    }

    /// Copies `src` (at most to the ring's end) into `side`'s data at
    /// `offset` with volatile writes. Returns how many were copied.
    #[inline]
    pub(crate) fn copy_in(&self, side: Side, offset: usize, src: &[u8]) -> usize {
        let (dst, len) = self.data_ptr(side, offset, src.len());
        let lead = dst.align_offset(8).min(len);
        let words = (len - lead) / 8;
        for (i, byte) in src[..lead].iter().enumerate() {
            // SAFETY: `dst..dst + len` is inside the mapping (`data_ptr`).
            unsafe { dst.add(i).write_volatile(*byte) };
        }
        for w in 0..words {
            let at = lead + 8 * w;
            let mut word = [0u8; 8];
            word.copy_from_slice(&src[at..at + 8]);
            // SAFETY: in the mapping as above, and 8-aligned by `lead`.
            unsafe {
                dst.add(at)
                    .cast::<u64>()
                    .write_volatile(u64::from_ne_bytes(word))
            };
        }
        for (i, byte) in src.iter().enumerate().take(len).skip(lead + 8 * words) {
            // SAFETY: in the mapping as above.
            unsafe { dst.add(i).write_volatile(*byte) };
        }
        len
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // SAFETY: mapped by `map` with this length; no reference into it
        // exists (only this struct's methods touch it, and they borrow it).
        let unmapped = unsafe { munmap(self.base.cast::<c_void>(), self.len) };
        if let Err(e) = unmapped {
            tracing::warn!("cannot unmap a shared ring: {e}");
        }
    }
}

/// A printable memfd name (shown in `/proc/<pid>/maps`): `orch-ring:<name>`,
/// with anything unusual replaced and the length bounded (the kernel takes
/// at most 249 bytes).
fn memfd_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    format!("orch-ring:{clean}")
}

/// Sleeps while `word` still holds `expected`, at most `timeout`; returns at
/// once if it changed meanwhile. A shared futex (no private flag): the other
/// process wakes it through its own mapping.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let spec = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_nanos()),
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word` (valid for the
    // call) and the timespec on our stack; it writes nothing of ours.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &raw const spec,
        );
    }
}

/// Wakes one sleeper on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1);
    }
}

/// Makes `fd` the child's [`CHILD_FD`] when `command` is spawned; the fd
/// stays close-on-exec in this process, so no other child inherits it.
pub fn hand_to_child(command: &mut Command, fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and calls only
    // `dup2` and `fcntl`, which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            let done = if raw == CHILD_FD {
                // dup2 onto itself would keep CLOEXEC: clear it instead.
                libc::fcntl(raw, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, CHILD_FD)
            };
            if done < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
