//! Hidden files a killed server leaves behind: persistence temps (`.capio-tmp-`) and `storage: fs`
//! data files (`.capio-data-`). A graceful shutdown removes its own; after a SIGKILL nobody would.
//! So the server notes every directory it makes one in (a journal in the runtime directory, one
//! append per directory), and the next server of the workflow removes, from those directories
//! only, hidden files whose maker is dead. No scan of the CAPIO tree, and a live server's files
//! (another workflow sharing the directory) are never touched.

use crate::log::{info, warning};
use crate::persist;
use capio_proto::sys;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

struct Journal {
    path: PathBuf,
    state: Mutex<(File, HashSet<PathBuf>)>,
}

static JOURNAL: OnceLock<Journal> = OnceLock::new();

/// What start-up found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub dirs: usize,
    pub removed: Vec<PathBuf>,
}

/// Clean up after a previous server (if its journal is there), then start this server's journal.
pub fn start(path: &Path) -> io::Result<Recovered> {
    let recovered = recover(path, std::process::id())?;
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let _ = JOURNAL.set(Journal {
        path: path.to_path_buf(),
        state: Mutex::new((file, HashSet::new())),
    });
    Ok(recovered)
}

/// Remove the hidden files of dead servers from the directories the journal at `path` names.
pub fn recover(path: &Path, me: u32) -> io::Result<Recovered> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovered::default()),
        Err(e) => return Err(e),
    };
    let mut out = Recovered::default();
    let dirs: HashSet<&[u8]> = text.split(|&b| b == 0).filter(|d| !d.is_empty()).collect();
    for dir in dirs {
        let dir = Path::new(OsStr::from_bytes(dir));
        let Ok(entries) = fs::read_dir(dir) else {
            continue; // gone meanwhile: nothing left to clean there
        };
        out.dirs += 1;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = persist::owner_pid(&name) else {
                continue;
            };
            let alive = i32::try_from(pid).is_ok_and(sys::process_alive);
            if pid == me || alive {
                continue;
            }
            // Never follow a symlink someone put there: remove only plain files of ours.
            if !entry.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            match fs::remove_file(entry.path()) {
                Ok(()) => out.removed.push(entry.path()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warning!("cannot remove leftover {}: {e}", entry.path().display()),
            }
        }
    }
    out.removed.sort();
    Ok(out)
}

/// Record that this server makes a hidden file in `dir` (canonical). Cheap after the first time.
pub fn note(dir: &Path) {
    let Some(j) = JOURNAL.get() else {
        return; // unit tests, and start-up before the journal exists
    };
    let mut st = j.state.lock().unwrap_or_else(|e| e.into_inner());
    if st.1.contains(dir) {
        return;
    }
    let mut line = dir.as_os_str().as_bytes().to_vec();
    line.push(0);
    match st.0.write_all(&line) {
        Ok(()) => {
            st.1.insert(dir.to_path_buf());
        }
        Err(e) => warning!(
            "cannot record {} in {}: {e} (a crash would leave its hidden files behind)",
            dir.display(),
            j.path.display()
        ),
    }
}

/// A clean shutdown left no hidden file behind: the journal goes.
pub fn finish() {
    if let Some(j) = JOURNAL.get() {
        let _guard = j.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = fs::remove_file(&j.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            warning!("cannot remove {}: {e}", j.path.display());
        }
    }
}

/// Log what [`start`] did.
pub fn report(r: &Recovered) {
    if !r.removed.is_empty() {
        info!(
            "removed {} hidden file(s) a previous server of this workflow left when it was \
             killed (in {} directories), e.g. {}",
            r.removed.len(),
            r.dirs,
            r.removed[0].display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdir::TestDir;

    #[test]
    fn removes_only_dead_servers_hidden_files_from_journaled_dirs() {
        let t = TestDir::new();
        let (a, b, other) = (t.path().join("a"), t.path().join("b"), t.path().join("o"));
        for d in [&a, &b, &other] {
            fs::create_dir(d).unwrap();
        }
        // A pid that cannot be alive (above pid_max) plays the killed server.
        let dead = 4_194_400u32;
        let me = std::process::id();
        let dead_tmp = format!(".out.capio-tmp-{dead}-0");
        let dead_data = format!(".x.capio-data-{dead}-7");
        let mine = format!(".out.capio-tmp-{me}-1");
        let live = ".out.capio-tmp-1-1".to_owned(); // pid 1 is always alive
        for (dir, name) in [
            (&a, dead_tmp.as_str()),
            (&a, "plain.txt"),
            (&a, mine.as_str()),
            (&a, live.as_str()),
            (&b, dead_data.as_str()),
            (&other, dead_tmp.as_str()),
        ] {
            fs::write(dir.join(name), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", b.join(format!(".l.capio-tmp-{dead}-1")))
            .unwrap();
        let journal = t.path().join("wf.hidden");
        let mut text = a.as_os_str().as_bytes().to_vec();
        text.push(0);
        text.extend_from_slice(b.as_os_str().as_bytes());
        text.push(0);
        text.extend_from_slice(b"/nonexistent/dir\0");
        fs::write(&journal, text).unwrap();

        let r = recover(&journal, me).unwrap();
        assert_eq!(r.removed, vec![a.join(&dead_tmp), b.join(&dead_data)]);
        assert_eq!(r.dirs, 2);
        for kept in [
            a.join("plain.txt"),
            a.join(&mine),
            a.join(&live),
            other.join(&dead_tmp),
        ] {
            assert!(kept.exists(), "{}", kept.display());
        }
        assert!(fs::symlink_metadata(b.join(format!(".l.capio-tmp-{dead}-1"))).is_ok());
        assert_eq!(
            recover(&t.path().join("none"), me).unwrap(),
            Recovered::default()
        );
    }
}
