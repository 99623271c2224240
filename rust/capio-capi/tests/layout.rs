//! The Rust structs and constants agree with `capsule/pycapio_capi.h` as a C compiler lays it out:
//! compile `layout.c` (which includes the header) with the `cc` crate's compiler, run it, compare
//! every field's offset and size. Also compiles the header as C++ and with `-Wall -Werror`.

use capio_capi::{CapiTable, Header, Stat};
use std::collections::BTreeMap;
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;

fn capsule_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../capsule")
}

fn compiler(cpp: bool) -> cc::Tool {
    cc::Build::new()
        .cpp(cpp)
        .target(env!("CAPIO_CAPI_TARGET"))
        .host(env!("CAPIO_CAPI_HOST"))
        .opt_level(0)
        .debug(false)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .get_compiler()
}

fn build(cpp: bool, out: &Path) {
    let mut cmd = compiler(cpp).to_command();
    cmd.args(["-Wall", "-Wextra", "-Werror", "-I"])
        .arg(capsule_dir())
        .arg("-o")
        .arg(out);
    if cpp {
        cmd.args(["-x", "c++"]);
    }
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layout.c"));
    let status = cmd.status().expect("run the C compiler");
    assert!(status.success(), "compiling layout.c failed: {cmd:?}");
}

/// name → (offset, size) as printed by the C program.
fn c_layout(cpp: bool) -> BTreeMap<String, (usize, usize)> {
    let dir = std::env::temp_dir().join(format!(
        "capio-capi-layout-{}-{}",
        std::process::id(),
        if cpp { "cpp" } else { "c" }
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join(if cpp { "layout_cpp" } else { "layout_c" });
    build(cpp, &exe);
    let out = Command::new(&exe).output().expect("run layout");
    assert!(out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut it = l.split(' ');
            let name = it.next().unwrap().to_string();
            let a = it.next().unwrap().parse().unwrap();
            let b = it.next().unwrap().parse().unwrap();
            (name, (a, b))
        })
        .collect()
}

macro_rules! field {
    ($map:ident, $cname:literal, $t:ty, $f:ident) => {{
        // The size of one field, through a reference to a value we never create.
        fn size_of_field<F>(_: impl Fn(&$t) -> &F) -> usize {
            size_of::<F>()
        }
        $map.insert(
            concat!($cname, ".", stringify!($f)).to_string(),
            (offset_of!($t, $f), size_of_field(|s: &$t| &s.$f)),
        );
    }};
}

fn rust_layout() -> BTreeMap<String, (usize, usize)> {
    let mut m = BTreeMap::new();
    m.insert("pycapio_stat".into(), (0, size_of::<Stat>()));
    field!(m, "pycapio_stat", Stat, size);
    field!(m, "pycapio_stat", Stat, mtime_ns);
    field!(m, "pycapio_stat", Stat, mode);
    field!(m, "pycapio_stat", Stat, kind);
    field!(m, "pycapio_stat", Stat, committed);
    field!(m, "pycapio_stat", Stat, reserved);

    m.insert("pycapio_capi_header".into(), (0, size_of::<Header>()));
    field!(m, "pycapio_capi_header", Header, magic);
    field!(m, "pycapio_capi_header", Header, abi_major);
    field!(m, "pycapio_capi_header", Header, abi_minor);
    field!(m, "pycapio_capi_header", Header, struct_size);
    field!(m, "pycapio_capi_header", Header, reserved);

    m.insert("pycapio_capi".into(), (0, size_of::<CapiTable>()));
    field!(m, "pycapio_capi", CapiTable, header);
    field!(m, "pycapio_capi", CapiTable, is_initialized);
    field!(m, "pycapio_capi", CapiTable, get_capio_dir);
    field!(m, "pycapio_capi", CapiTable, open);
    field!(m, "pycapio_capi", CapiTable, close);
    field!(m, "pycapio_capi", CapiTable, read);
    field!(m, "pycapio_capi", CapiTable, write);
    field!(m, "pycapio_capi", CapiTable, pread);
    field!(m, "pycapio_capi", CapiTable, pwrite);
    field!(m, "pycapio_capi", CapiTable, lseek);
    field!(m, "pycapio_capi", CapiTable, fstat);
    field!(m, "pycapio_capi", CapiTable, stat);
    field!(m, "pycapio_capi", CapiTable, mkdir);
    field!(m, "pycapio_capi", CapiTable, unlink);
    field!(m, "pycapio_capi", CapiTable, rename);
    field!(m, "pycapio_capi", CapiTable, listdir);
    field!(m, "pycapio_capi", CapiTable, ftruncate);
    field!(m, "pycapio_capi", CapiTable, rmdir);

    m.insert("PYCAPIO_CAPI_MAGIC".into(), (0, capio_capi::MAGIC as usize));
    m.insert(
        "PYCAPIO_CAPI_ABI_MAJOR".into(),
        (0, capio_capi::ABI_MAJOR.into()),
    );
    m.insert(
        "PYCAPIO_CAPI_ABI_MINOR".into(),
        (0, capio_capi::ABI_MINOR.into()),
    );
    m.insert(
        "PYCAPIO_KIND_FILE".into(),
        (0, capio_capi::KIND_FILE as usize),
    );
    m.insert(
        "PYCAPIO_KIND_DIR".into(),
        (0, capio_capi::KIND_DIR as usize),
    );
    m
}

#[test]
fn the_c_header_and_the_rust_structs_have_one_layout() {
    let rust = rust_layout();
    let c = c_layout(false);
    assert_eq!(c, rust, "C (left) and Rust (right) disagree");
    // The table is a header then only function pointers: nothing in between, nothing after.
    assert_eq!(
        c["pycapio_capi"].1,
        c["pycapio_capi.rmdir"].0 + c["pycapio_capi.rmdir"].1
    );
    assert_eq!(Header::CURRENT.struct_size as usize, size_of::<CapiTable>());
}

#[test]
fn the_header_compiles_as_cpp_with_the_same_layout() {
    assert_eq!(c_layout(true), rust_layout());
}
