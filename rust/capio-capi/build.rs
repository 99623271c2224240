//! Hands the target triple to the layout test, which compiles the C header with the `cc` crate
//! outside a build script (where cargo sets no TARGET/HOST).

fn main() {
    for var in ["TARGET", "HOST"] {
        if let Ok(v) = std::env::var(var) {
            println!("cargo:rustc-env=CAPIO_CAPI_{var}={v}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
