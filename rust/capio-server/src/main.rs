//! The `capio_server` binary: parse the command line, then hand over to the listener.
#![forbid(unsafe_code)]

use capio_server::log::{self, Level};
use capio_server::{cli, cluster, listener, ready::Ready};
use std::process::ExitCode;

fn main() -> ExitCode {
    let opts = match cli::parse(std::env::args_os().skip(1)) {
        Ok(cli::Command::Run(opts)) => opts,
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Version) => {
            println!(
                "capio_server {}\n{}",
                env!("CARGO_PKG_VERSION"),
                cluster::support_line()
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("capio_server: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let mut ready = match Ready::claim(opts.ready_fd) {
        Ok(ready) => ready,
        Err(e) => {
            eprintln!("ERR cannot use --ready-fd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Best effort: with the soft limit only, the server runs out of fds at ~1000 live files.
    if let Err(e) = capio_proto::sys::raise_open_file_limit() {
        log::write(
            Level::Warn,
            format_args!("cannot raise the open-file limit: {e}"),
        );
    }
    match listener::run(&opts, &mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // A daemon's log file should say why it is gone; on stderr the ERR line says it.
            if !log::to_stderr() {
                log::write(Level::Error, format_args!("start-up failed: {e}"));
            }
            ready.fail(&e);
            ExitCode::FAILURE
        }
    }
}
