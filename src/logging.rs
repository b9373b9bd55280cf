//! The server's log: `tracing` to stderr (as nats-server logs) or appended to a file
//! (`-l/--log`), with the two operations signals need while it runs: a new level on
//! config reload (SIGHUP) and reopening the file (SIGUSR1, for logrotate: after the
//! file is moved away, the next line goes to a new file at the configured path).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::reload::Handle;

/// The log file being written, reopenable.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// What can change in the running log.
struct Control {
    file: Option<Arc<LogFile>>,
    filter: Handle<EnvFilter, tracing_subscriber::Registry>,
    /// `RUST_LOG` was set: it wins over the configured level, at start and on reload.
    env_filter: bool,
    level: Mutex<String>,
}

static CONTROL: OnceLock<Control> = OnceLock::new();

/// Writes one formatted event to the current log file.
struct FileWriter(Arc<LogFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.file.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

fn open_append(path: &Path) -> Result<File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open log file {}: {e}", path.display()))
}

/// Log to stderr, or appending to `file`, at `level` unless `RUST_LOG` says otherwise.
pub fn init(file: Option<&Path>, level: &str) -> Result<(), String> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let env = EnvFilter::try_from_default_env().ok();
    let env_filter = env.is_some();
    let (filter, handle) = tracing_subscriber::reload::Layer::new(env.unwrap_or_else(|| level.into()));
    let registry = tracing_subscriber::registry().with(filter);
    let file = match file {
        Some(path) => {
            let f = Arc::new(LogFile { path: path.to_owned(), file: Mutex::new(open_append(path)?) });
            let w = f.clone();
            let layer = tracing_subscriber::fmt::layer().with_ansi(false).with_writer(move || FileWriter(w.clone()));
            registry.with(layer).try_init().map_err(|e| e.to_string())?;
            Some(f)
        }
        None => {
            registry
                .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
                .try_init()
                .map_err(|e| e.to_string())?;
            None
        }
    };
    let _ = CONTROL.set(Control { file, filter: handle, env_filter, level: Mutex::new(level.to_owned()) });
    Ok(())
}

/// Reopen the log file at its path (SIGUSR1), with nats-server's log lines; a server
/// logging to stderr ignores it.
pub fn reopen() {
    let Some(f) = CONTROL.get().and_then(|c| c.file.as_ref()) else {
        tracing::info!("File log re-open ignored, not a file logger");
        return;
    };
    match open_append(&f.path) {
        Ok(new) => {
            *f.file.lock().unwrap_or_else(|e| e.into_inner()) = new;
            tracing::info!("File log re-opened");
        }
        Err(e) => tracing::error!("File log re-open failed: {e}"),
    }
}

/// Set the level (`info`, `debug`, `trace`) on config reload; returns whether it changed.
/// `RUST_LOG`, when set, keeps priority.
pub fn set_level(level: &str) -> bool {
    let Some(c) = CONTROL.get() else { return false };
    let mut cur = c.level.lock().unwrap_or_else(|e| e.into_inner());
    if *cur == level {
        return false;
    }
    *cur = level.to_owned();
    if !c.env_filter {
        let _ = c.filter.reload(EnvFilter::new(level));
    }
    true
}
