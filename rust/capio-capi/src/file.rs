//! `CapioFile`: an owned CAPIO fd with `Read`, `Write` and `Seek`, closed on drop.

use crate::abi::Stat;
use crate::api::Api;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::RawFd;
use std::path::Path;

/// A CAPIO file opened through the C API. Reads wait per CAPIO-CL like the Python ones; writes
/// publish to streaming readers as they land. Dropping it closes the fd (an error then is lost:
/// call [`CapioFile::close`] to see it).
pub struct CapioFile {
    api: Api,
    fd: RawFd,
}

impl CapioFile {
    /// `open(2)` flags and mode, e.g. `libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC`, `0o644`.
    pub fn open(api: Api, path: impl AsRef<Path>, flags: i32, mode: u32) -> io::Result<CapioFile> {
        let fd = api.open(path.as_ref(), flags, mode)?;
        Ok(CapioFile { api, fd })
    }

    /// Create or truncate for writing (`O_WRONLY | O_CREAT | O_TRUNC`, mode 0o666).
    pub fn create(api: Api, path: impl AsRef<Path>) -> io::Result<CapioFile> {
        CapioFile::open(
            api,
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
            0o666,
        )
    }

    /// Open for reading; waits until a producer creates the file if it does not exist yet.
    pub fn open_read(api: Api, path: impl AsRef<Path>) -> io::Result<CapioFile> {
        CapioFile::open(api, path, libc::O_RDONLY, 0)
    }

    /// The fd (still owned by this value).
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.api.pread(self.fd, buf, offset)
    }

    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<usize> {
        self.api.pwrite(self.fd, data, offset)
    }

    pub fn metadata(&self) -> io::Result<Stat> {
        self.api.fstat(self.fd)
    }

    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.api.ftruncate(self.fd, size)
    }

    /// Close now, reporting an error.
    pub fn close(self) -> io::Result<()> {
        let (api, fd) = (self.api, self.fd);
        std::mem::forget(self);
        api.close(fd)
    }
}

impl Read for CapioFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.api.read(self.fd, buf)
    }
}

impl Write for CapioFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.api.write(self.fd, data)
    }

    /// Writes go straight to the file's shared memory: nothing is buffered here.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for CapioFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let (off, whence) = match pos {
            SeekFrom::Start(o) => (crate::api::offset(o)?, libc::SEEK_SET),
            SeekFrom::Current(o) => (o, libc::SEEK_CUR),
            SeekFrom::End(o) => (o, libc::SEEK_END),
        };
        self.api.lseek(self.fd, off, whence)
    }
}

impl Drop for CapioFile {
    fn drop(&mut self) {
        let _ = self.api.close(self.fd);
    }
}
