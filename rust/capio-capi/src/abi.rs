//! The ABI of `pycapio._pycapio.C_API`, field for field as `capsule/pycapio_capi.h` declares it
//! (`tests/layout.rs` compiles the header and compares), and the version check every importer runs.

use std::ffi::{CStr, c_char, c_int, c_uint, c_void};
use std::fmt;

/// The capsule's name, which is also `module.attribute`.
pub const CAPSULE_NAME: &CStr = c"pycapio._pycapio.C_API";
pub const MODULE: &CStr = c"pycapio._pycapio";
pub const ATTR: &CStr = c"C_API";
/// `'PCAP'`.
pub const MAGIC: u32 = 0x5043_4150;
/// Incompatible changes bump the major version; appended functions bump the minor one.
pub const ABI_MAJOR: u16 = 1;
pub const ABI_MINOR: u16 = 0;

/// [`Stat::kind`] of a file.
pub const KIND_FILE: u32 = 1;
/// [`Stat::kind`] of a directory.
pub const KIND_DIR: u32 = 2;

/// `struct pycapio_stat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Bytes published so far (the final size once committed).
    pub size: u64,
    pub mtime_ns: i64,
    /// Permission bits.
    pub mode: u32,
    /// [`KIND_FILE`] or [`KIND_DIR`].
    pub kind: u32,
    /// 1 once committed per CAPIO-CL, else 0.
    pub committed: u32,
    pub reserved: [u32; 3],
}

impl Stat {
    pub fn is_dir(&self) -> bool {
        self.kind == KIND_DIR
    }

    pub fn is_committed(&self) -> bool {
        self.committed != 0
    }
}

/// `struct pycapio_capi_header`: what an importer reads before it trusts the rest.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub magic: u32,
    pub abi_major: u16,
    pub abi_minor: u16,
    /// `size_of` the whole table as the provider built it.
    pub struct_size: u32,
    pub reserved: u32,
}

impl Header {
    /// The header of a table of this crate's version.
    pub const CURRENT: Header = Header {
        magic: MAGIC,
        abi_major: ABI_MAJOR,
        abi_minor: ABI_MINOR,
        struct_size: size_of::<CapiTable>() as u32,
        reserved: 0,
    };
}

/// `struct pycapio_capi`: append-only; every function returns `-errno` on failure and may be
/// called from any thread without the GIL. The header documents each one.
#[repr(C)]
pub struct CapiTable {
    pub header: Header,
    // ---- ABI 1.0 ----
    pub is_initialized: unsafe extern "C" fn() -> c_int,
    pub get_capio_dir: unsafe extern "C" fn(buf: *mut c_char, len: usize) -> i64,
    pub open: unsafe extern "C" fn(path: *const c_char, flags: c_int, mode: c_uint) -> c_int,
    pub close: unsafe extern "C" fn(fd: c_int) -> c_int,
    pub read: unsafe extern "C" fn(fd: c_int, buf: *mut c_void, len: usize) -> i64,
    pub write: unsafe extern "C" fn(fd: c_int, buf: *const c_void, len: usize) -> i64,
    pub pread: unsafe extern "C" fn(fd: c_int, buf: *mut c_void, len: usize, offset: i64) -> i64,
    pub pwrite: unsafe extern "C" fn(fd: c_int, buf: *const c_void, len: usize, offset: i64) -> i64,
    pub lseek: unsafe extern "C" fn(fd: c_int, offset: i64, whence: c_int) -> i64,
    pub fstat: unsafe extern "C" fn(fd: c_int, st: *mut Stat) -> c_int,
    pub stat: unsafe extern "C" fn(path: *const c_char, st: *mut Stat) -> c_int,
    pub mkdir: unsafe extern "C" fn(path: *const c_char, mode: c_uint) -> c_int,
    pub unlink: unsafe extern "C" fn(path: *const c_char) -> c_int,
    pub rename: unsafe extern "C" fn(src: *const c_char, dst: *const c_char) -> c_int,
    pub listdir: unsafe extern "C" fn(path: *const c_char, buf: *mut c_char, len: usize) -> i64,
    pub ftruncate: unsafe extern "C" fn(fd: c_int, size: i64) -> c_int,
    pub rmdir: unsafe extern "C" fn(path: *const c_char) -> c_int,
}

/// Why a capsule's table cannot be used by this build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportError {
    /// Importing the module or reading its attribute failed; a Python exception is set.
    Python,
    /// The attribute is not a capsule with the expected name.
    NotACapsule,
    BadMagic(u32),
    /// Different ABI major version: the table's `(major, minor)`.
    Major(u16, u16),
    /// The table is older than this build: it lacks functions this build may call.
    TooSmall {
        found: (u16, u16),
        size: u32,
    },
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = CAPSULE_NAME.to_string_lossy();
        match *self {
            ImportError::Python => write!(f, "pycapio C API: importing {name} failed"),
            ImportError::NotACapsule => {
                write!(f, "pycapio C API: {name} is not a capsule named \"{name}\"")
            }
            ImportError::BadMagic(m) => write!(
                f,
                "pycapio C API: bad magic 0x{m:08x} (expected 0x{MAGIC:08x}): not a pycapio function table"
            ),
            ImportError::Major(major, minor) => write!(
                f,
                "pycapio C API version {major}.{minor} is incompatible with this extension, built for \
                 {ABI_MAJOR}.{ABI_MINOR} (different major version): rebuild the extension against the \
                 installed pycapio"
            ),
            ImportError::TooSmall {
                found: (major, minor),
                size,
            } => write!(
                f,
                "pycapio C API version {major}.{minor} is incompatible with this extension, built for \
                 {ABI_MAJOR}.{ABI_MINOR}: its function table has {size} bytes, the extension needs {} \
                 (upgrade pycapio)",
                size_of::<CapiTable>()
            ),
        }
    }
}

impl std::error::Error for ImportError {}

/// The same checks, in the same order, as `pycapio_capi_from_capsule` in the C header.
pub fn check_header(h: &Header) -> Result<(), ImportError> {
    if h.magic != MAGIC {
        return Err(ImportError::BadMagic(h.magic));
    }
    if h.abi_major != ABI_MAJOR {
        return Err(ImportError::Major(h.abi_major, h.abi_minor));
    }
    if (h.struct_size as usize) < size_of::<CapiTable>() {
        return Err(ImportError::TooSmall {
            found: (h.abi_major, h.abi_minor),
            size: h.struct_size,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_header_passes_and_doctored_ones_fail_clearly() {
        assert_eq!(check_header(&Header::CURRENT), Ok(()));
        let newer = Header {
            abi_minor: ABI_MINOR + 3,
            struct_size: Header::CURRENT.struct_size + 24,
            ..Header::CURRENT
        };
        assert_eq!(
            check_header(&newer),
            Ok(()),
            "a newer minor with a longer table is fine"
        );

        let major = Header {
            abi_major: 2,
            ..Header::CURRENT
        };
        let e = check_header(&major).unwrap_err();
        assert_eq!(e, ImportError::Major(2, ABI_MINOR));
        assert!(
            e.to_string().starts_with(
                "pycapio C API version 2.0 is incompatible with this extension, built for 1.0"
            ),
            "{e}"
        );

        let small = Header {
            struct_size: 16,
            ..Header::CURRENT
        };
        let e = check_header(&small).unwrap_err();
        assert!(matches!(e, ImportError::TooSmall { size: 16, .. }));
        assert!(
            e.to_string().contains("its function table has 16 bytes"),
            "{e}"
        );

        let magic = Header {
            magic: 0xdead_beef,
            ..Header::CURRENT
        };
        assert!(
            check_header(&magic)
                .unwrap_err()
                .to_string()
                .contains("0xdeadbeef")
        );
    }

    #[test]
    fn sizes_are_fixed() {
        assert_eq!(size_of::<Header>(), 16);
        assert_eq!(size_of::<Stat>(), 40);
        assert_eq!(
            size_of::<CapiTable>(),
            16 + 17 * size_of::<usize>(),
            "a header then function pointers"
        );
    }
}
