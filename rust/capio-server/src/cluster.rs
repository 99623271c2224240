//! Whether this server was built to span nodes over MPI (`PYCAPIO_MPI=1 pip install .`, the cargo
//! feature `mpi`), and with which MPI library: what `capio_server --version` and the status report
//! say. The multi-node engine itself grows behind the same feature.

/// `Some(library version)` when built with MPI support, `None` otherwise.
pub fn mpi_library() -> Option<String> {
    #[cfg(feature = "mpi")]
    {
        // MPI_Get_library_version may be called before MPI_Init; a failure still means "built in".
        Some(
            mpi::environment::library_version()
                .map(|v| {
                    v.split([',', '\n'])
                        .next()
                        .unwrap_or_default()
                        .trim()
                        .to_owned()
                })
                .unwrap_or_else(|_| "unknown MPI library".to_owned()),
        )
    }
    #[cfg(not(feature = "mpi"))]
    None
}

/// One line for `--version` and logs.
pub fn support_line() -> String {
    match mpi_library() {
        Some(library) => format!("MPI support: built in ({library})"),
        None => "MPI support: not built in (build with PYCAPIO_MPI=1 pip install .)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_whether_mpi_is_built_in() {
        let line = support_line();
        if cfg!(feature = "mpi") {
            assert!(line.starts_with("MPI support: built in ("), "{line}");
        } else {
            assert!(line.starts_with("MPI support: not built in"), "{line}");
        }
    }
}
