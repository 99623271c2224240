//! Command-line options, and the environment defaults they fall back on (as the reference server).

use crate::error::StartError;
use crate::log::Level;
use crate::rules;
use capio_cl::Rules;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
Usage: capio_server [OPTIONS]

The node-local CAPIO server of one workflow: serves files under the CAPIO directory from memory
and persists them at commit.

Options:
      --capio-dir DIR       CAPIO directory (default: $CAPIO_DIR; must exist)
      --workflow-name NAME  workflow name (default: $CAPIO_WORKFLOW_NAME, else CAPIO)
      --no-config           run with the default rules (also the default without -c)
  -c, --config FILE         CAPIO-CL file: its commit, fire, permanent, exclude and storage
                            rules are enforced; an invalid file stops the start-up
      --ready-fd N          once listening write 'OK <pid>' to fd N and close it;
                            on a start-up failure write 'ERR <message>' and exit 1
      --daemonize           fork into the background before starting
      --log-file PATH       append the log there (default: stderr, or the workflow's log
                            file in the runtime directory when daemonized)
  -b, --backend NAME        'none': this node alone (the default); 'mpi': one server per node
                            of the MPI job that launched it (needs a build with MPI support)
      --managed             started by 'pycapio server start': clients' teardown requests are
                            ignored; only 'pycapio server stop' (a Shutdown request) or a
                            signal stops it
      --memory-limit BYTES  budget for the bytes of memory-backed files (suffixes K, M, G, T:
                            powers of 1024, e.g. 512M, 2G); a write that would exceed it fails
                            with ENOSPC (default: $PYCAPIO_MEMORY_LIMIT, else no limit)
      --pool-limit BYTES    the most memory of deleted files kept, already allocated, for new
                            files (pooled memory counts against --memory-limit and gives way
                            to files that need it; unused for --pool-idle it goes back to
                            the system); 0 keeps none (default: $PYCAPIO_POOL_LIMIT, else a
                            quarter of the memory, or of the control group's limit)
      --pool-idle SECONDS   how long pooled memory may stay unused before it goes back to
                            the system (default: $PYCAPIO_POOL_IDLE, else 30)
      --spill-dir DIR       under --memory-limit, committed files leave memory for anonymous
                            files in DIR/pycapio-spill-<uid> (made 0700) when memory is full
                            (default: $PYCAPIO_SPILL_DIR, else $TMPDIR, else /tmp)
      --mem-only            accepted for compatibility; has no effect
  -h, --help                print this help
      --version             print the version

Environment: CAPIO_DIR, CAPIO_WORKFLOW_NAME, CAPIO_LOG_LEVEL (error|warn|info|debug or 0-3),
PYCAPIO_MEMORY_LIMIT, PYCAPIO_POOL_LIMIT, PYCAPIO_POOL_IDLE, PYCAPIO_SPILL_DIR, PYCAPIO_RUNTIME_DIR (where the socket, lock, log and info file live).
Exit status: 0 after a normal shutdown, 1 if start-up failed, 2 on a usage error.
";

pub const DEFAULT_WORKFLOW: &str = "CAPIO";
/// Environment variable holding the default of `--memory-limit`.
pub const MEMORY_LIMIT_ENV: &str = "PYCAPIO_MEMORY_LIMIT";
/// Environment variable holding the default of `--pool-limit`.
pub const POOL_LIMIT_ENV: &str = "PYCAPIO_POOL_LIMIT";
/// Environment variable holding the default of `--pool-idle`.
pub const POOL_IDLE_ENV: &str = "PYCAPIO_POOL_IDLE";
/// Environment variable holding the default of `--spill-dir`.
pub const SPILL_DIR_ENV: &str = "PYCAPIO_SPILL_DIR";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub capio_dir: Option<PathBuf>,
    pub workflow: Option<String>,
    pub config: Option<PathBuf>,
    pub no_config: bool,
    pub ready_fd: Option<i32>,
    pub daemonize: bool,
    pub log_file: Option<PathBuf>,
    pub backend: Option<String>,
    pub mem_only: bool,
    /// `--memory-limit`, as given (parsed by `resolve`, so the environment's value is checked the
    /// same way).
    pub memory_limit: Option<String>,
    /// `--pool-limit`, as given (parsed by `resolve`).
    pub pool_limit: Option<String>,
    /// `--pool-idle`, as given (parsed by `resolve`).
    pub pool_idle: Option<String>,
    pub spill_dir: Option<PathBuf>,
    pub managed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Boxed: the options are many, the other commands none.
    Run(Box<Options>),
    Help,
    Version,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("unknown option '{0}'")]
    Unknown(String),
    #[error("unexpected argument '{0}'")]
    Positional(String),
    #[error("option '{0}' needs a value")]
    MissingValue(String),
    #[error("option '{0}' takes no value")]
    UnexpectedValue(String),
    #[error("invalid value '{value}' for '{option}'")]
    BadValue { option: String, value: String },
    #[error("--no-config and --config cannot be combined")]
    ConfigConflict,
}

/// Parse the arguments (without the program name). Both `--opt value` and `--opt=value` work.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, UsageError> {
    let mut args = args.into_iter();
    let mut o = Options::default();
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        let (name, inline) = match bytes.iter().position(|&b| b == b'=') {
            Some(i) if bytes.starts_with(b"--") => {
                (&bytes[..i], Some(OsStr::from_bytes(&bytes[i + 1..])))
            }
            _ => (bytes, None),
        };
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = || -> Result<OsString, UsageError> {
            inline
                .map(OsStr::to_os_string)
                .or_else(|| args.next())
                .ok_or_else(|| UsageError::MissingValue(name.clone()))
        };
        let text = |v: OsString| -> Result<String, UsageError> {
            v.into_string().map_err(|v| UsageError::BadValue {
                option: name.clone(),
                value: v.to_string_lossy().into_owned(),
            })
        };
        let flag = |set: &mut bool| -> Result<(), UsageError> {
            match inline {
                Some(_) => Err(UsageError::UnexpectedValue(name.clone())),
                None => {
                    *set = true;
                    Ok(())
                }
            }
        };
        match name.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--version" => return Ok(Command::Version),
            "--capio-dir" => o.capio_dir = Some(value()?.into()),
            "--workflow-name" => o.workflow = Some(text(value()?)?),
            "-c" | "--config" => o.config = Some(value()?.into()),
            "--no-config" => flag(&mut o.no_config)?,
            "--ready-fd" => {
                let v = text(value()?)?;
                let fd = v.parse::<i32>().ok().filter(|fd| *fd >= 0);
                o.ready_fd = Some(fd.ok_or(UsageError::BadValue {
                    option: name.clone(),
                    value: v,
                })?);
            }
            "--daemonize" => flag(&mut o.daemonize)?,
            "--log-file" => o.log_file = Some(value()?.into()),
            "-b" | "--backend" => o.backend = Some(text(value()?)?),
            "--mem-only" => flag(&mut o.mem_only)?,
            "--managed" => flag(&mut o.managed)?,
            // Checked by `resolve`, like the environment's value: a bad one is then reported on
            // the ready fd, where the client that starts the server reads it.
            "--memory-limit" => o.memory_limit = Some(text(value()?)?),
            "--pool-limit" => o.pool_limit = Some(text(value()?)?),
            "--pool-idle" => o.pool_idle = Some(text(value()?)?),
            "--spill-dir" => o.spill_dir = Some(value()?.into()),
            _ if name.starts_with('-') => return Err(UsageError::Unknown(name)),
            _ => return Err(UsageError::Positional(name)),
        }
    }
    if o.no_config && o.config.is_some() {
        return Err(UsageError::ConfigConflict);
    }
    Ok(Command::Run(Box::new(o)))
}

/// Options completed from the environment and checked.
#[derive(Debug)]
pub struct Settings {
    /// Canonical.
    pub capio_dir: PathBuf,
    pub workflow: String,
    /// The CAPIO-CL file, canonical; `None` without one.
    pub config: Option<PathBuf>,
    /// Loaded before anything is started, so an invalid file leaves nothing half-started.
    pub rules: Rules,
    pub log_level: Level,
    /// Set when `CAPIO_LOG_LEVEL` held something unusable (logged once the logger runs).
    pub bad_log_level: Option<String>,
    /// Budget for memory-backed file bytes; `None`: unlimited.
    pub memory_limit: Option<u64>,
    /// The most memory of gone files pooled for new ones.
    pub pool_limit: u64,
    /// How long pooled memory may stay unused.
    pub pool_idle: Duration,
    /// Where the spill directory is made.
    pub spill_parent: PathBuf,
    /// `--backend mpi`: one server per node of the MPI job that launched this one.
    pub multinode: bool,
}

/// A byte count: digits with an optional binary suffix `K`, `M`, `G` or `T` (also `KiB`, `KB`,
/// any case), e.g. `512M`. Zero and overflow are refused.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = t.split_at(digits);
    let number: u64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift).filter(|&n| n > 0)
}

impl Options {
    /// Fill in defaults from `env` (normally `std::env::var_os`) and validate.
    pub fn resolve(&self, env: impl Fn(&str) -> Option<OsString>) -> Result<Settings, StartError> {
        let multinode = match self.backend.as_deref().unwrap_or("none") {
            "" | "none" => false,
            "mpi" if cfg!(feature = "mpi") => true,
            "mpi" => return Err(StartError::NoMpi),
            other => return Err(StartError::Backend(other.to_owned())),
        };
        let dir = self
            .capio_dir
            .clone()
            .or_else(|| {
                env("CAPIO_DIR")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .ok_or(StartError::NoCapioDir)?;
        let capio_dir = fs::canonicalize(&dir).map_err(|source| StartError::CapioDir {
            path: dir.clone(),
            source,
        })?;
        if !capio_dir.is_dir() {
            return Err(StartError::CapioDirNotDir(dir));
        }
        let workflow = self
            .workflow
            .clone()
            .or_else(|| {
                env("CAPIO_WORKFLOW_NAME")
                    .and_then(|w| w.into_string().ok())
                    .filter(|w| !w.is_empty())
            })
            .unwrap_or_else(|| DEFAULT_WORKFLOW.to_owned());
        let (rules, config) = rules::load(self.config.as_deref(), &capio_dir)?;
        let given = |option: &Option<String>, var: &str| match option {
            Some(v) => Some(v.clone()),
            None => env(var)
                .map(|v| v.to_string_lossy().into_owned())
                .filter(|v| !v.trim().is_empty()),
        };
        let memory_limit = given(&self.memory_limit, MEMORY_LIMIT_ENV)
            .map(|v| parse_size(&v).ok_or(StartError::MemoryLimit(v)))
            .transpose()?;
        let pool_limit = match given(&self.pool_limit, POOL_LIMIT_ENV) {
            Some(v) if v.trim() == "0" => 0,
            Some(v) => parse_size(&v).ok_or(StartError::PoolLimit(v))?,
            None => crate::pool::default_limit(),
        };
        let pool_idle = match given(&self.pool_idle, POOL_IDLE_ENV) {
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or(StartError::PoolIdle(v))?,
            None => crate::pool::IDLE,
        };
        let spill_parent = self
            .spill_dir
            .clone()
            .or_else(|| {
                env(SPILL_DIR_ENV)
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
            })
            .or_else(|| env("TMPDIR").filter(|d| !d.is_empty()).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("/tmp"));
        let raw_level = env("CAPIO_LOG_LEVEL").map(|l| l.to_string_lossy().into_owned());
        let parsed = raw_level.as_deref().map(Level::parse);
        Ok(Settings {
            capio_dir,
            workflow,
            config,
            rules,
            log_level: parsed.flatten().unwrap_or(Level::Info),
            bad_log_level: raw_level.filter(|_| parsed == Some(None)),
            memory_limit,
            pool_limit,
            pool_idle,
            spill_parent,
            multinode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;

    fn run(args: &[&str]) -> Result<Options, UsageError> {
        match parse(args.iter().map(OsString::from))? {
            Command::Run(o) => Ok(*o),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_every_option() {
        let o = run(&[
            "--capio-dir",
            "/d",
            "--workflow-name=wf",
            "-c",
            "x.json",
            "--ready-fd",
            "7",
            "--daemonize",
            "--log-file",
            "/l",
            "-b",
            "none",
            "--mem-only",
            "--managed",
        ])
        .unwrap();
        assert_eq!(o.capio_dir, Some(PathBuf::from("/d")));
        assert_eq!(o.workflow.as_deref(), Some("wf"));
        assert_eq!(o.config, Some(PathBuf::from("x.json")));
        assert_eq!(o.ready_fd, Some(7));
        assert!(o.daemonize && o.mem_only && o.managed && !o.no_config);
        assert_eq!(o.log_file, Some(PathBuf::from("/l")));
        assert_eq!(o.backend.as_deref(), Some("none"));
        assert_eq!(parse([OsString::from("--help")]).unwrap(), Command::Help);
        assert_eq!(
            parse([OsString::from("--version")]).unwrap(),
            Command::Version
        );
    }

    #[test]
    fn usage_errors() {
        assert!(matches!(run(&["--bogus"]), Err(UsageError::Unknown(_))));
        assert!(matches!(
            run(&["script.py"]),
            Err(UsageError::Positional(_))
        ));
        assert!(matches!(
            run(&["--capio-dir"]),
            Err(UsageError::MissingValue(_))
        ));
        assert!(matches!(
            run(&["--daemonize=1"]),
            Err(UsageError::UnexpectedValue(_))
        ));
        assert!(matches!(
            run(&["--ready-fd", "-3"]),
            Err(UsageError::BadValue { .. })
        ));
        assert!(matches!(
            run(&["--no-config", "-c", "f"]),
            Err(UsageError::ConfigConflict)
        ));
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2g"), Some(2 << 30));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("3 KB"), Some(3 << 10));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        for bad in [
            "",
            "0",
            "M",
            "1.5G",
            "12Q",
            "-1",
            "99999999999999999999",
            "16777216T",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(
            run(&["--memory-limit", "64M"])
                .unwrap()
                .memory_limit
                .as_deref(),
            Some("64M")
        );
    }

    #[test]
    fn the_pool_limit_is_given_zero_or_a_quarter_of_the_memory() {
        let t = TestDir::new();
        let o = Options {
            capio_dir: Some(t.path().into()),
            ..Options::default()
        };
        let quarter = crate::pool::default_limit();
        assert!(quarter > 0);
        assert_eq!(o.resolve(|_| None).unwrap().pool_limit, quarter);
        let env = |v: &'static str| move |k: &str| (k == POOL_LIMIT_ENV).then(|| OsString::from(v));
        assert_eq!(o.resolve(env("0")).unwrap().pool_limit, 0);
        assert_eq!(o.resolve(env("2G")).unwrap().pool_limit, 2 << 30);
        assert!(matches!(
            o.resolve(env("half")),
            Err(StartError::PoolLimit(v)) if v == "half"
        ));
        let given = Options {
            pool_limit: Some("1M".into()),
            ..o
        };
        assert_eq!(given.resolve(env("0")).unwrap().pool_limit, 1 << 20);
        let idle = |v: &'static str| move |k: &str| (k == POOL_IDLE_ENV).then(|| OsString::from(v));
        assert_eq!(
            given.resolve(idle("0.5")).unwrap().pool_idle,
            Duration::from_millis(500)
        );
        assert_eq!(
            given.resolve(|_| None).unwrap().pool_idle,
            crate::pool::IDLE
        );
        assert!(matches!(
            given.resolve(idle("-1")),
            Err(StartError::PoolIdle(v)) if v == "-1"
        ));
    }

    #[test]
    fn the_memory_limit_comes_from_the_option_or_the_environment() {
        let t = TestDir::new();
        let o = Options {
            capio_dir: Some(t.path().into()),
            ..Options::default()
        };
        let env = |k: &str| (k == MEMORY_LIMIT_ENV).then(|| OsString::from("8M"));
        assert_eq!(o.resolve(env).unwrap().memory_limit, Some(8 << 20));
        assert_eq!(o.resolve(|_| None).unwrap().memory_limit, None);
        let bad = |k: &str| (k == MEMORY_LIMIT_ENV).then(|| OsString::from("8 apples"));
        let e = o.resolve(bad).unwrap_err();
        assert!(e.to_string().contains("8 apples"), "{e}");
        let given = Options {
            memory_limit: Some("1K".into()),
            ..o
        };
        assert_eq!(given.resolve(env).unwrap().memory_limit, Some(1024));
        let bad_option = Options {
            memory_limit: Some("lots".into()),
            ..given
        };
        assert!(matches!(
            bad_option.resolve(env),
            Err(StartError::MemoryLimit(v)) if v == "lots"
        ));
    }

    #[test]
    fn resolve_uses_the_environment_and_checks_it() {
        let t = TestDir::new();
        let dir = t.path().as_os_str().to_owned();
        let env = |k: &str| match k {
            "CAPIO_DIR" => Some(dir.clone()),
            "CAPIO_LOG_LEVEL" => Some("-1".into()),
            _ => None,
        };
        let s = Options::default().resolve(env).unwrap();
        assert_eq!(s.capio_dir, t.path());
        assert_eq!(s.workflow, DEFAULT_WORKFLOW);
        assert_eq!(s.log_level, Level::Error);
        assert!(s.bad_log_level.is_none());

        let none = |_: &str| None;
        assert!(matches!(
            Options::default().resolve(none),
            Err(StartError::NoCapioDir)
        ));
        let o = Options {
            capio_dir: Some(t.path().join("missing")),
            ..Options::default()
        };
        assert!(matches!(o.resolve(none), Err(StartError::CapioDir { .. })));
        let o = Options {
            capio_dir: Some(t.path().into()),
            backend: Some("mpi".into()),
            ..Options::default()
        };
        if cfg!(feature = "mpi") {
            assert!(o.resolve(none).unwrap().multinode);
        } else {
            let e = o.resolve(none).unwrap_err();
            assert!(matches!(e, StartError::NoMpi), "{e}");
            assert!(e.to_string().contains("PYCAPIO_MPI=1 pip install ."), "{e}");
        }
        let o = Options {
            capio_dir: Some(t.path().into()),
            backend: Some("tcp".into()),
            ..Options::default()
        };
        let e = o.resolve(none).unwrap_err();
        assert_eq!(
            e.to_string(),
            "backend 'tcp' is not supported by this build"
        );
        let o = Options {
            capio_dir: Some(t.path().into()),
            config: Some(t.path().join("nope.json")),
            ..Options::default()
        };
        assert!(matches!(o.resolve(none), Err(StartError::Config(_))));
        let bad = |k: &str| (k == "CAPIO_LOG_LEVEL").then(|| OsString::from("loud"));
        let o = Options {
            capio_dir: Some(t.path().into()),
            ..Options::default()
        };
        let s = o.resolve(bad).unwrap();
        assert_eq!(
            (s.log_level, s.bad_log_level.as_deref()),
            (Level::Info, Some("loud"))
        );
    }
}
