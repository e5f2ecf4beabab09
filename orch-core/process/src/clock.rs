//! The machine's clocks, as numbers: the monotonic clock benchmarks stamp
//! events with when publisher and receiver may be different processes, and
//! the wall clock in milliseconds the bus stamps every event with.

/// Nanoseconds on the monotonic clock (`CLOCK_MONOTONIC`, the machine's:
/// the same in every process, so a time taken in one can be compared with
/// one taken in another).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
        (t.tv_sec() as u64) * 1_000_000_000 + t.tv_nsec() as u64
    })
}

/// Milliseconds since the Unix epoch on the wall clock (`CLOCK_REALTIME`),
/// 0 before the epoch. One clock read and integer arithmetic: the bus
/// stamps every published event with it (`SystemTime::now()` and
/// `duration_since` cost it a third more).
pub fn wall_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME).map_or(0, |t| {
        let (Ok(seconds), Ok(nanos)) = (u64::try_from(t.tv_sec()), u64::try_from(t.tv_nsec()))
        else {
            return 0;
        };
        seconds
            .saturating_mul(1_000)
            .saturating_add(nanos / 1_000_000)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wall_clock_reads_as_system_time_does() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let now = wall_ms();
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(
            before <= now && now <= after,
            "{before} <= {now} <= {after}"
        );
    }
}
