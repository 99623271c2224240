//! The raw syscalls CAPIO needs that `std` does not wrap, each behind a safe function, grouped by
//! what they touch. Every `unsafe` block of the control plane lives in this module.

mod files;
mod mem;
mod process;
mod socket;

pub use files::*;
pub use mem::*;
pub use process::*;
pub use socket::*;

use std::io;

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
