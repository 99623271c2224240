//! The readiness handshake with whoever started the server: one line, `OK <pid>` or
//! `ERR <message>`, on an inherited fd that is then closed.

use capio_proto::sys;
use std::fmt::Display;
use std::fs::File;
use std::io::{self, Write};

pub struct Ready {
    pipe: Option<File>,
}

impl Ready {
    /// Take over `--ready-fd`, if given.
    pub fn claim(fd: Option<i32>) -> io::Result<Ready> {
        let pipe = fd.map(sys::claim_inherited_fd).transpose()?.map(File::from);
        Ok(Ready { pipe })
    }

    /// Report success (once; later calls do nothing).
    pub fn ok(&mut self) {
        if let Some(mut pipe) = self.pipe.take() {
            // The starter may have given up waiting; that must not stop the server.
            let _ = writeln!(pipe, "OK {}", std::process::id());
        }
    }

    /// Report a start-up failure: on the ready fd if there is one, else on stderr.
    pub fn fail(&mut self, why: &dyn Display) {
        let line = format!("ERR {}\n", why.to_string().replace('\n', " "));
        match self.pipe.take() {
            Some(mut pipe) => {
                let _ = pipe.write_all(line.as_bytes());
            }
            None => eprint!("{line}"),
        }
    }
}
