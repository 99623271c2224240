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

    /// Report success (once; later calls do nothing). False when the starter is gone (it gave
    /// up waiting and closed its end): nobody is going to attach to a server started for it.
    pub fn ok(&mut self) -> bool {
        match self.pipe.take() {
            Some(mut pipe) => writeln!(pipe, "OK {}", std::process::id()).is_ok(),
            None => true,
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
