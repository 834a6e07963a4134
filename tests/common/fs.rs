//! Files for the SQLite tests: a temporary directory per test, and the
//! mounts that make a disk full or a file read-only for real (the tests run
//! as root, for whom `chmod` stops nothing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("lss-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `livestore.db` inside it.
    pub fn db(&self) -> PathBuf {
        self.path.join("livestore.db")
    }

    /// `sqlite://` URL of `livestore.db` inside it.
    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.db().display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A filesystem mounted for one test, unmounted (lazily) on drop, and its
/// mount point removed if the mount created it.
pub struct Mount {
    pub path: PathBuf,
    created: bool,
}

impl Mount {
    /// A tmpfs of `bytes` at `path` (created). `Err` says why mounting is
    /// not possible here (not root, no CAP_SYS_ADMIN).
    pub fn tmpfs(path: &Path, bytes: u64) -> Result<Mount, String> {
        let m = Mount::at(path);
        let size = format!("size={bytes}");
        mount(&["-t", "tmpfs", "-o", &size, "tmpfs", path_str(path)])?;
        Ok(m)
    }

    /// A read-only view of directory `of` at `path` (a read-only bind
    /// mount: what a read-only filesystem looks like to the server).
    /// `of` may be a file: `path` (the same file, or one that exists) then
    /// reads as a read-only file in a writable directory.
    pub fn read_only_bind(of: &Path, path: &Path) -> Result<Mount, String> {
        let m = Mount::at(path);
        mount(&["--bind", path_str(of), path_str(path)])?;
        mount(&["-o", "remount,bind,ro", path_str(path)])?;
        Ok(m)
    }

    /// The mount point `path`, created as a directory unless it exists.
    fn at(path: &Path) -> Mount {
        let created = !path.exists();
        if created {
            std::fs::create_dir_all(path).unwrap();
        }
        Mount {
            path: path.to_path_buf(),
            created,
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: detached at once even while a file on it is still open.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.path)
            .stderr(std::process::Stdio::null())
            .status();
        if self.created {
            let _ = std::fs::remove_dir(&self.path);
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn mount(args: &[&str]) -> Result<(), String> {
    let out = Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| format!("mount {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this process may mount (root with CAP_SYS_ADMIN). Tests that
/// need a mount say so and pass without it only when `LSS_ALLOW_NO_MOUNT`
/// is set; CI runs as root and must mount.
pub fn mount_or_explain(r: Result<Mount, String>) -> Option<Mount> {
    match r {
        Ok(m) => Some(m),
        Err(e) if std::env::var_os("LSS_ALLOW_NO_MOUNT").is_some() => {
            eprintln!("SKIPPED (LSS_ALLOW_NO_MOUNT is set): cannot mount here: {e}");
            None
        }
        Err(e) => panic!(
            "this test needs to mount a filesystem (run as root, or set LSS_ALLOW_NO_MOUNT=1 to skip it): {e}"
        ),
    }
}
