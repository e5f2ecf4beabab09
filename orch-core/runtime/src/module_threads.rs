//! Which threads run a generation's code: every thread that runs module code
//! of generation N of a module carries the OS thread name (`comm`)
//! `om<id>g<N>`, set by the host on the threads it runs module code on, and a
//! thread the module starts with `std::thread::spawn` inherits it from the
//! thread that started it. After a generation is retired, a live thread with
//! its name is one the module left running, and its library must stay mapped:
//! unmapping code a thread still runs would crash the host.
//!
//! A thread the module names itself (`thread::Builder::name`) carries another
//! name and is not seen here.

use std::ffi::CString;
use std::fs;
use std::time::{Duration, Instant};

/// How long a thread that has just finished (the generation's own host
/// thread, joined a moment ago) may still be listed by the kernel.
const SETTLE: Duration = Duration::from_millis(100);

/// The OS thread name of generation `generation` of the module with
/// subscriber id `id`: at most 15 bytes, as the kernel keeps them.
pub(crate) fn tag(id: u64, generation: u32) -> String {
    let mut tag = format!("om{id}g{generation}");
    tag.truncate(15);
    tag
}

/// Gives the calling thread the name `tag`, so the threads it starts inherit
/// it. A failure only costs the detection of left-over threads.
pub(crate) fn name_current_thread(tag: &str) {
    if let Ok(name) = CString::new(tag) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// Live threads of this process named `tag`, other than the calling one,
/// waiting up to [`SETTLE`] for threads that are just ending.
pub(crate) fn left_running(tag: &str) -> usize {
    let until = Instant::now() + SETTLE;
    loop {
        let count = named(tag);
        if count == 0 || Instant::now() >= until {
            return count;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Threads of this process named `tag`, other than the calling one.
fn named(tag: &str) -> usize {
    let me = nix::unistd::gettid().to_string();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|task| task.file_name().to_str() != Some(me.as_str()))
        .filter(|task| {
            fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim_end() == tag)
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_thread_started_by_a_tagged_thread_is_counted_until_it_ends() {
        let tag = tag(u64::from(std::process::id()) % 1000, 7);
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let tagged = std::thread::spawn(move || {
            name_current_thread(&tag);
            // Unnamed, as `std::thread::spawn` in module code: inherits the tag.
            let raw = std::thread::spawn(move || {
                let _ = started_tx.send(());
                let _ = stop_rx.recv();
            });
            (tag, raw)
        });
        let (tag, raw) = tagged.join().expect("tagged thread");
        started_rx.recv().expect("raw thread started");
        assert_eq!(left_running(&tag), 1, "the raw thread carries {tag}");
        drop(stop_tx);
        raw.join().expect("raw thread ends");
        assert_eq!(left_running(&tag), 0);
    }

    #[test]
    fn tags_fit_the_kernel_limit() {
        assert_eq!(tag(3, 12), "om3g12");
        assert!(tag(u64::MAX, u32::MAX).len() <= 15);
    }
}
