//! The machine's monotonic clock, as a number: what benchmarks stamp events
//! with when publisher and receiver may be different processes.

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`, the machine's:
/// the same in every process, so a time taken in one can be compared with
/// one taken in another).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64
    })
}
