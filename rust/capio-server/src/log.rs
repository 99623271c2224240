//! A tiny leveled logger: one line per event, to stderr or appended to a file, shared by all threads.

use std::fmt;
use std::io::Write;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl Level {
    /// `CAPIO_LOG_LEVEL`: a name or 0-3; negative numbers (the reference's "quiet") mean errors only.
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "error" => Level::Error,
            "warn" | "warning" => Level::Warn,
            "info" => Level::Info,
            "debug" => Level::Debug,
            n => match n.parse::<i64>().ok()? {
                i64::MIN..=0 => Level::Error,
                1 => Level::Warn,
                2 => Level::Info,
                _ => Level::Debug,
            },
        })
    }

    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

struct Logger {
    level: Level,
    to_stderr: bool,
    sink: Mutex<Box<dyn Write + Send>>,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Where log lines go.
pub enum Sink {
    Stderr,
    File(std::fs::File),
}

/// Install the process-wide logger; later calls are ignored. Before it is installed (and in unit
/// tests) messages are dropped.
pub fn init(level: Level, sink: Sink) {
    let (to_stderr, sink): (bool, Box<dyn Write + Send>) = match sink {
        Sink::Stderr => (true, Box::new(std::io::stderr())),
        Sink::File(f) => (false, Box::new(f)),
    };
    let _ = LOGGER.set(Logger {
        level,
        to_stderr,
        sink: Mutex::new(sink),
    });
}

/// Whether log lines already reach stderr (so a start-up error need not be printed twice).
pub fn to_stderr() -> bool {
    LOGGER.get().is_some_and(|l| l.to_stderr)
}

pub fn enabled(level: Level) -> bool {
    LOGGER.get().is_some_and(|l| level <= l.level)
}

pub fn write(level: Level, args: fmt::Arguments<'_>) {
    let Some(logger) = LOGGER.get().filter(|l| level <= l.level) else {
        return;
    };
    // One `write_all` per line so lines from different threads never interleave.
    let line = format!(
        "{} capio_server[{}] {}: {args}\n",
        timestamp(),
        std::process::id(),
        level.label()
    );
    let mut sink = logger.sink.lock().unwrap_or_else(|e| e.into_inner());
    let _ = sink.write_all(line.as_bytes());
    let _ = sink.flush();
}

/// UTC `YYYY-MM-DDTHH:MM:SS.mmmZ` without a date crate (civil-from-days, H. Hinnant).
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        now.subsec_millis()
    )
}

macro_rules! error {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) };
}
// Not `warn!`: that name clashes with the built-in `#[warn]` attribute on re-export.
macro_rules! warning {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) };
}
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) };
}
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::enabled($crate::log::Level::Debug) {
            $crate::log::write($crate::log::Level::Debug, format_args!($($t)*))
        }
    };
}
pub(crate) use {debug, error, info, warning};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_like_the_reference() {
        assert_eq!(Level::parse("debug"), Some(Level::Debug));
        assert_eq!(Level::parse("WARN"), Some(Level::Warn));
        assert_eq!(Level::parse("-1"), Some(Level::Error));
        assert_eq!(Level::parse("0"), Some(Level::Error));
        assert_eq!(Level::parse("2"), Some(Level::Info));
        assert_eq!(Level::parse("7"), Some(Level::Debug));
        assert_eq!(Level::parse("loud"), None);
    }

    #[test]
    fn timestamps_are_iso_utc() {
        let t = timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
