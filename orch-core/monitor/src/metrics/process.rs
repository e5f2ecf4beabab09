//! The process's own resident memory and thread count, from `/proc/self/status`.

/// `(resident bytes, threads)`, zeros where `/proc` says nothing.
pub fn resident_and_threads() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:") * 1024, field("Threads:"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_memory_and_threads() {
        let (resident, threads) = super::resident_and_threads();
        assert!(resident > 1024 * 1024, "{resident}");
        assert!(threads >= 1);
    }
}
