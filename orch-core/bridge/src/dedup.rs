//! The ids of the messages imported lately, so a message the broker delivers
//! again (JetStream redelivers what was not acknowledged in time) reaches the
//! local subscribers once. With a file, the window outlives the process: an
//! orchestrator killed with SIGKILL after its modules handled a message but
//! before the broker heard the acknowledgement skips the redelivery when it
//! comes back. Each id is written as it is remembered (one `write`, no
//! `fsync`: the page cache survives the process, not the machine).
//!
//! An id is remembered with the node it came from (`<origin> <message id>`,
//! one line of the file each): a message that carries another node's id
//! under its own origin does not hide that node's event. The window is
//! bounded by count and by bytes, and so is its file, which is read back
//! (its newest part, at most a bounded number of bytes) line by line, every
//! line that breaks the caps of [`crate::caps`] skipped.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::caps;

/// The longest key: an origin, a space and a message id.
pub const MAX_KEY: usize = caps::MAX_NAME + 1 + caps::MAX_MESSAGE_ID;

/// A bounded window of recent ids: the oldest is forgotten first, once it
/// holds more than its count of ids or more than its bytes (each key's
/// length and a newline, as in the file).
pub struct RecentIds {
    seen: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    log: Option<IdLog>,
}

/// The window's file: one key per line, appended; rewritten with the window
/// alone once it holds twice the window's count of lines or twice its bytes.
struct IdLog {
    path: PathBuf,
    file: File,
    lines: usize,
    bytes: usize,
}

/// The key of message `id` from node `origin`, if both keep the caps.
fn key(origin: &str, id: &str) -> Option<String> {
    (caps::name("the origin", origin).is_ok() && caps::message_id(id).is_ok())
        .then(|| format!("{origin} {id}"))
}

/// A line of the file read back: its key, if it keeps the caps.
fn parse_line(line: &[u8]) -> Option<&str> {
    let line = std::str::from_utf8(line).ok()?;
    let (origin, id) = line.split_once(' ')?;
    key(origin, id).map(|_| line)
}

impl RecentIds {
    /// A window of at most `capacity` ids (at least 1) and `max_bytes`.
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            seen: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            max_bytes: max_bytes.max(MAX_KEY + 1),
            bytes: 0,
            log: None,
        }
    }

    /// The most bytes of the file read at start: what it can hold before a
    /// compaction, and one line more.
    fn read_limit(&self) -> u64 {
        (2 * self.max_bytes + MAX_KEY + 1) as u64
    }

    /// A window kept in `path` too, starting with the ids already there
    /// (the newest of them, read within a bound whatever the file's size).
    pub fn persistent(path: &Path, capacity: usize, max_bytes: usize) -> std::io::Result<Self> {
        let mut window = Self::new(capacity, max_bytes);
        if let Ok(file) = File::open(path) {
            window.read_back(file);
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut log = IdLog {
            path: path.to_owned(),
            file: OpenOptions::new().create(true).append(true).open(path)?,
            lines: 0,
            bytes: 0,
        };
        log.compact(&window.order)?;
        window.log = Some(log);
        Ok(window)
    }

    /// Remembers the good lines of the last [`Self::read_limit`] bytes of
    /// `file` (a cut first line is dropped).
    fn read_back(&mut self, mut file: File) {
        let limit = self.read_limit();
        let size = file.metadata().map_or(0, |m| m.len());
        let cut = size > limit && file.seek(SeekFrom::Start(size - limit)).is_ok();
        let mut reader = BufReader::new(file.take(limit));
        let mut line = Vec::with_capacity(MAX_KEY + 1);
        let mut first = true;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if std::mem::take(&mut first) && cut {
                continue;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if let Some(key) = parse_line(text) {
                self.remember(key);
            }
        }
    }

    /// Whether message `id` from `origin` is in the window.
    pub fn contains(&self, origin: &str, id: &str) -> bool {
        key(origin, id).is_some_and(|key| self.contains_key(&key))
    }

    /// Whether `key` (`<origin> <id>`, as the window's file has it) is in
    /// the window.
    pub fn contains_key(&self, key: &str) -> bool {
        self.seen.contains(key)
    }

    /// Remembers message `id` from `origin` (in the file too), forgetting
    /// the oldest past the bounds; nothing that breaks the caps.
    pub fn insert(&mut self, origin: &str, id: &str) {
        self.insert_all([(origin, id)]);
    }

    /// Remembers each `(origin, id)` as [`Self::insert`] does, the new ones
    /// written to the file in one `write`.
    pub fn insert_all<'k>(&mut self, ids: impl IntoIterator<Item = (&'k str, &'k str)>) {
        let keys: Vec<Arc<str>> = ids
            .into_iter()
            .filter_map(|(origin, id)| key(origin, id))
            .map(Arc::from)
            .collect();
        self.insert_keys(&keys);
    }

    /// [`Self::insert_all`] for keys made already (`<origin> <id>`, both
    /// parts read within the caps, as an importer's envelope check does):
    /// each is kept as it is, not copied.
    pub(crate) fn insert_keys<'k>(&mut self, keys: impl IntoIterator<Item = &'k Arc<str>>) {
        let mut lines = String::new();
        let mut count = 0;
        for key in keys {
            debug_assert!(key.len() <= MAX_KEY && parse_line(key.as_bytes()).is_some());
            if self.remember_shared(Arc::clone(key)) && self.log.is_some() {
                lines.push_str(key);
                lines.push('\n');
                count += 1;
            }
        }
        if count == 0 {
            return;
        }
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let written = log.append(&lines, count).and_then(|()| {
            if log.lines > 2 * self.capacity || log.bytes > 2 * self.max_bytes {
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

    fn remember(&mut self, key: &str) -> bool {
        !self.seen.contains(key) && self.remember_shared(Arc::from(key))
    }

    fn remember_shared(&mut self, key: Arc<str>) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        self.seen.insert(Arc::clone(&key));
        self.bytes += key.len() + 1;
        self.order.push_back(key);
        while self.order.len() > self.capacity || self.bytes > self.max_bytes {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.bytes -= old.len() + 1;
            self.seen.remove(&old);
        }
        true
    }

    /// How many ids it holds.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The bytes of the ids it holds (each key and a newline).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl IdLog {
    /// Appends `count` whole lines in one `write`.
    fn append(&mut self, lines: &str, count: usize) -> std::io::Result<()> {
        self.file.write_all(lines.as_bytes())?;
        self.lines += count;
        self.bytes += lines.len();
        Ok(())
    }

    /// Rewrites the file with `keys` alone (beside it, then renamed over it).
    fn compact(&mut self, keys: &VecDeque<Arc<str>>) -> std::io::Result<()> {
        let partial = self.path.with_extension("partial");
        let mut text = String::with_capacity(keys.iter().map(|k| k.len() + 1).sum());
        for key in keys {
            text.push_str(key);
            text.push('\n');
        }
        std::fs::write(&partial, &text)?;
        std::fs::rename(&partial, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = keys.len();
        self.bytes = text.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_bounded_and_forgets_the_oldest() {
        let mut ids = RecentIds::new(3, 1 << 20);
        for id in ["a", "b", "c", "a", "d"] {
            ids.insert("n", id);
        }
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains("n", "a"), "the oldest went first");
        assert!(ids.contains("n", "b") && ids.contains("n", "c") && ids.contains("n", "d"));
    }

    #[test]
    fn an_id_is_remembered_with_its_origin() {
        let mut ids = RecentIds::new(10, 1 << 20);
        ids.insert("node-x", "node-a-17-00aa");
        assert!(ids.contains("node-x", "node-a-17-00aa"));
        assert!(
            !ids.contains("node-a", "node-a-17-00aa"),
            "node-a's own is not hidden"
        );
    }

    #[test]
    fn the_window_is_bounded_in_bytes_too() {
        let max_bytes = 10 * (MAX_KEY + 1);
        let mut ids = RecentIds::new(1_000_000, max_bytes);
        let origin = "o".repeat(caps::MAX_NAME);
        for n in 0..1_000 {
            let id = format!("{n:0>width$}", width = caps::MAX_MESSAGE_ID);
            ids.insert(&origin, &id);
            assert!(ids.bytes() <= max_bytes, "{} bytes", ids.bytes());
        }
        assert_eq!(ids.len(), 10, "the newest ten fit");
        let newest = format!("{:0>width$}", 999, width = caps::MAX_MESSAGE_ID);
        assert!(ids.contains(&origin, &newest));
        // Small ids: the count bounds it first.
        let mut small = RecentIds::new(5, 1 << 20);
        for n in 0..100 {
            small.insert("a", &n.to_string());
        }
        assert_eq!(small.len(), 5);
        assert_eq!(small.bytes(), 5 * "a 99\n".len());
    }

    #[test]
    fn what_breaks_the_caps_is_never_remembered() {
        let mut ids = RecentIds::new(100, 1 << 20);
        ids.insert(&"o".repeat(60_000), "id");
        ids.insert("node", &"i".repeat(60_000));
        ids.insert("no de", "id");
        ids.insert("node", "i d");
        assert!(ids.is_empty());
        assert_eq!(ids.bytes(), 0);
    }

    #[test]
    fn ids_remembered_together_are_written_once_each_and_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        {
            let mut ids = RecentIds::persistent(&path, 100, 1 << 20).expect("open");
            ids.insert("a", "id-0");
            // A repeat, a key past the caps and a new id in one batch.
            let long = "i".repeat(60_000);
            ids.insert_all([
                ("a", "id-0"),
                ("a", long.as_str()),
                ("b", "id-1"),
                ("a", "id-2"),
            ]);
            assert_eq!(ids.len(), 3);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text, "a id-0\nb id-1\na id-2\n");
        let ids = RecentIds::persistent(&path, 100, 1 << 20).expect("open again");
        assert!(
            ids.contains("a", "id-0") && ids.contains("b", "id-1") && ids.contains("a", "id-2")
        );
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn a_batch_larger_than_the_window_keeps_the_file_within_its_bound() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        let keys: Vec<String> = (0..50).map(|n| format!("id-{n}")).collect();
        {
            let mut ids = RecentIds::persistent(&path, 4, 1 << 20).expect("open");
            ids.insert_all(keys.iter().map(|id| ("a", id.as_str())));
            assert_eq!(ids.len(), 4);
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.lines().count() <= 2 * 4, "{text}");
        let ids = RecentIds::persistent(&path, 4, 1 << 20).expect("open again");
        assert!((46..50).all(|n| ids.contains("a", &format!("id-{n}"))));
    }

    #[test]
    fn a_persistent_window_outlives_its_process_and_stays_bounded() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        {
            let mut ids = RecentIds::persistent(&path, 4, 1 << 20).expect("open");
            for n in 0..20 {
                ids.insert("a", &format!("id-{n}"));
            }
        }
        let lines = std::fs::read_to_string(&path)
            .expect("file")
            .lines()
            .count();
        assert!(lines <= 8, "{lines} lines for a window of 4");
        let again = RecentIds::persistent(&path, 4, 1 << 20).expect("reopen");
        assert_eq!(again.len(), 4);
        assert!(again.contains("a", "id-19") && again.contains("a", "id-16"));
        assert!(!again.contains("a", "id-15"));
    }

    #[test]
    fn the_file_is_compacted_by_bytes_as_well_as_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        let max_bytes = 4 * (MAX_KEY + 1);
        let mut ids = RecentIds::persistent(&path, 1_000_000, max_bytes).expect("open");
        let origin = "o".repeat(caps::MAX_NAME);
        for n in 0..500 {
            let id = format!("{n:0>width$}", width = caps::MAX_MESSAGE_ID);
            ids.insert(&origin, &id);
            let size = std::fs::metadata(&path).expect("file").len() as usize;
            assert!(size <= 2 * max_bytes + MAX_KEY + 1, "{size} bytes on disk");
        }
    }

    #[test]
    fn an_oversized_or_corrupt_file_is_read_within_a_bound_and_its_bad_lines_skipped() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ids");
        let max_bytes = 64 * 1024;
        let mut text = Vec::new();
        // 20 MiB of one line without an end, an old id-only line, lines over
        // the caps, bytes that are not UTF-8, then good lines.
        text.extend(std::iter::repeat_n(b'x', 20 << 20));
        text.extend_from_slice(b"\nnode-a-17\n");
        text.extend_from_slice(format!("{} id\n", "o".repeat(100)).as_bytes());
        text.extend_from_slice(format!("node {}\n", "i".repeat(200)).as_bytes());
        text.extend_from_slice(b"node \xff\xfe\n\nnode-a good-1\nnode-a good-2\n");
        std::fs::write(&path, &text).expect("write");
        let ids = RecentIds::persistent(&path, 100, max_bytes).expect("open");
        assert_eq!(ids.len(), 2, "the good lines alone");
        assert!(ids.contains("node-a", "good-1") && ids.contains("node-a", "good-2"));
        let size = std::fs::metadata(&path).expect("file").len();
        assert!(size < 100, "compacted at start: {size} bytes");
        // A file of only one huge line: nothing remembered, nothing read whole.
        std::fs::write(&path, vec![b'y'; 20 << 20]).expect("write");
        let ids = RecentIds::persistent(&path, 100, max_bytes).expect("open");
        assert!(ids.is_empty());
    }
}
