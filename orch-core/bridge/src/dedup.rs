//! The ids of the messages imported lately, so a message the broker delivers
//! again (JetStream redelivers what was not acknowledged in time) reaches the
//! local subscribers once. With a file, the window outlives the process: an
//! orchestrator killed with SIGKILL after its modules handled a message but
//! before the broker heard the acknowledgement skips the redelivery when it
//! comes back. Each id is written as it is remembered (one `write`, no
//! `fsync`: the page cache survives the process, not the machine).

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// A bounded window of recent ids: the oldest is forgotten first.
pub struct RecentIds {
    seen: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
    log: Option<IdLog>,
}

/// The window's file: one id per line, appended; rewritten with the window
/// alone once it holds twice as many lines.
struct IdLog {
    path: PathBuf,
    file: File,
    lines: usize,
}

impl RecentIds {
    /// A window of `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            log: None,
        }
    }

    /// A window kept in `path` too, starting with the ids already there.
    pub fn persistent(path: &Path, capacity: usize) -> std::io::Result<Self> {
        let mut window = Self::new(capacity);
        if let Ok(file) = File::open(path) {
            for line in BufReader::new(file).lines().map_while(Result::ok) {
                if !line.is_empty() {
                    window.remember(&line);
                }
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut log = IdLog {
            path: path.to_owned(),
            file: OpenOptions::new().create(true).append(true).open(path)?,
            lines: 0,
        };
        log.compact(&window.order)?;
        window.log = Some(log);
        Ok(window)
    }

    /// Whether `id` is in the window.
    pub fn contains(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    /// Remembers `id` (in the file too), forgetting the oldest past the
    /// capacity.
    pub fn insert(&mut self, id: &str) {
        if !self.remember(id) {
            return;
        }
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let written = log.append(id).and_then(|()| {
            if log.lines > 2 * self.capacity {
                log.compact(&self.order)
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            tracing::warn!(
                "[BRIDGE] cannot write {}: {e}; repeats after a crash are no longer caught",
                log.path.display()
            );
            self.log = None;
        }
    }

    fn remember(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_owned()) {
            return false;
        }
        self.order.push_back(id.to_owned());
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl IdLog {
    fn append(&mut self, id: &str) -> std::io::Result<()> {
        self.file.write_all(format!("{id}\n").as_bytes())?;
        self.lines += 1;
        Ok(())
    }

    /// Rewrites the file with `ids` alone (beside it, then renamed over it).
    fn compact(&mut self, ids: &VecDeque<String>) -> std::io::Result<()> {
        let partial = self.path.with_extension("partial");
        let mut text = String::with_capacity(ids.len() * 32);
        for id in ids {
            text.push_str(id);
            text.push('\n');
        }
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = ids.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded_and_forgets_the_oldest() {
        let mut ids = RecentIds::new(3);
        for id in ["a", "b", "c", "a", "d"] {
            ids.insert(id);
        }
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains("a"), "the oldest went first");
        assert!(ids.contains("b") && ids.contains("c") && ids.contains("d"));
    }

    #[test]
    fn a_persistent_window_outlives_its_process_and_stays_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        {
            let mut ids = RecentIds::persistent(&path, 4).expect("open");
            for n in 0..20 {
                ids.insert(&format!("id-{n}"));
            }
        }
        let lines = std::fs::read_to_string(&path)
            .expect("file")
            .lines()
            .count();
        assert!(lines <= 8, "{lines} lines for a window of 4");
        let again = RecentIds::persistent(&path, 4).expect("reopen");
        assert_eq!(again.len(), 4);
        assert!(again.contains("id-19") && again.contains("id-16"));
        assert!(!again.contains("id-15"));
    }
}
