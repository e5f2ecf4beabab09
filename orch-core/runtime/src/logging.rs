//! Logging: tracing-subscriber to the console (human or JSON) and to a log file
//! rotated by size, with `RUST_LOG` filtering and secret values scrubbed from every
//! line (console and file) before it is written.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use file_rotate::{ContentLimit, FileRotate};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use orch_config::LogFormat;

pub use crate::scrubber::SecretScrubber;

/// Where and how to log.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Default filter when `RUST_LOG` is not set (`info`, `debug`, `orch_runtime=debug`...).
    pub level: String,
    /// Console format.
    pub format: LogFormat,
    /// The log file and its rotation; `None` logs to the console only.
    pub file: Option<LogFile>,
    /// Colour on the console (the caller checks the terminal and `NO_COLOR`).
    pub ansi: bool,
}

/// A size-rotated log file.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// The file (`logs/app.log`); its folder is created.
    pub path: PathBuf,
    /// Rotate after this many bytes.
    pub max_bytes: usize,
    /// How many files to keep in all, the current one included.
    pub max_files: usize,
}

/// Whether the console should get colour: a terminal, and `NO_COLOR` unset or empty.
pub fn console_wants_color() -> bool {
    orch_process::console::stdout_is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. Errors name what is wrong (a bad filter, an
/// unwritable log folder).
pub fn init(options: &LogOptions, scrubber: &SecretScrubber) -> Result<(), String> {
    // `target=level` directives, comma-separated, a bare level for the rest
    // (the filter of `tracing_subscriber::filter::Targets`: RUST_LOG's common
    // form, without span and field filters and the regular expressions they
    // would compile in).
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => value
            .trim()
            .parse::<Targets>()
            .map_err(|e| format!("RUST_LOG='{value}' is not a valid filter: {e}"))?,
        _ => options.level.trim().parse::<Targets>().map_err(|e| {
            format!(
                "logging.level '{}' in config/main.yaml is not a valid filter: {e}",
                options.level
            )
        })?,
    };
    let console = Scrubbing {
        inner: io::stdout,
        scrubber: scrubber.clone(),
    };
    let file_layer = match &options.file {
        Some(file) => Some(file_layer(file, scrubber)?),
        None => None,
    };
    let registry = tracing_subscriber::registry().with(filter).with(file_layer);
    let result = match options.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(console))
            .try_init(),
        LogFormat::Human => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(options.ansi)
                    .with_target(false)
                    .with_writer(console),
            )
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}

type FileLayer<S> = tracing_subscriber::fmt::Layer<
    S,
    tracing_subscriber::fmt::format::DefaultFields,
    tracing_subscriber::fmt::format::Format,
    Scrubbing<Arc<Mutex<FileRotate<AppendCount>>>>,
>;

fn file_layer<S>(file: &LogFile, scrubber: &SecretScrubber) -> Result<FileLayer<S>, String>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    if let Some(dir) = file.path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log folder {}: {e}", dir.display()))?;
    }
    // Owner-only: logs may hold what modules print, secrets scrubbed or not.
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true).mode(0o600);
    // Probe now: FileRotate would otherwise drop every line silently.
    options
        .open(&file.path)
        .map_err(|e| format!("cannot write the log file {}: {e}", file.path.display()))?;
    // A file made before by another program or version keeps no wider mode.
    let _ = std::fs::set_permissions(&file.path, std::fs::Permissions::from_mode(0o600));
    let rotating = FileRotate::new(
        &file.path,
        AppendCount::new(file.max_files.saturating_sub(1).max(1)),
        ContentLimit::BytesSurpassed(file.max_bytes.max(1)),
        Compression::None,
        Some(options),
    );
    Ok(tracing_subscriber::fmt::layer()
        .with_ansi(false)
        .with_writer(Scrubbing {
            inner: Arc::new(Mutex::new(rotating)),
            scrubber: scrubber.clone(),
        }))
}

/// A `MakeWriter` that buffers one event and scrubs secrets before writing it.
#[derive(Clone)]
pub struct Scrubbing<M> {
    inner: M,
    scrubber: SecretScrubber,
}

/// Writes through a shared writer (the rotating file).
pub struct SharedWriter<W: Write>(Arc<Mutex<W>>);

impl<W: Write> Write for SharedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// The per-event writer of [`Scrubbing`].
pub struct ScrubbingWriter<W: Write> {
    inner: W,
    scrubber: SecretScrubber,
    buffer: Vec<u8>,
}

impl<W: Write> Write for ScrubbingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ScrubbingWriter<W> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let scrubbed = self.scrubber.scrub(&text);
        let _ = self.inner.write_all(scrubbed.as_bytes());
        let _ = self.inner.flush();
    }
}

impl<'a, F, W> MakeWriter<'a> for Scrubbing<F>
where
    F: Fn() -> W + 'static,
    W: Write,
{
    type Writer = ScrubbingWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter {
            inner: (self.inner)(),
            scrubber: self.scrubber.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

impl<'a, W: Write + 'static> MakeWriter<'a> for Scrubbing<Arc<Mutex<W>>> {
    type Writer = ScrubbingWriter<SharedWriter<W>>;

    fn make_writer(&'a self) -> Self::Writer {
        ScrubbingWriter {
            inner: SharedWriter(Arc::clone(&self.inner)),
            scrubber: self.scrubber.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_scrubs_a_whole_event_written_in_pieces() {
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&["s3cr3t-value".into()]);
        let sink = Arc::new(Mutex::new(Vec::<u8>::new()));
        let make = Scrubbing {
            inner: Arc::clone(&sink),
            scrubber,
        };
        {
            let mut writer = make.make_writer();
            writer.write_all(b"password is s3cr").unwrap();
            writer.write_all(b"3t-value\n").unwrap();
        }
        let written = String::from_utf8(sink.lock().unwrap().clone()).unwrap();
        assert_eq!(written, "password is ***\n");
    }
}
