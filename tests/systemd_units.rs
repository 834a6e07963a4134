//! The committed systemd units pass `systemd-analyze verify`: the single
//! unit and the per-port template (checked as the template and as an
//! instance, `livestore-sync@8001`). The units name the installed binary
//! (`/usr/local/bin/livestore-sync`), which verify requires to exist, so
//! each is checked as a copy naming the binary this build made.
//! Without `systemd-analyze` the test fails and says what to install.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const INSTALLED_BIN: &str = "/usr/local/bin/livestore-sync";

fn verify(dir: &Path, unit: &str) {
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.join(unit))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run `systemd-analyze` ({e}): install it with \
                 `apt-get install -y systemd` (only the tool is needed, not a running systemd)"
            )
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify reports unknown keys and unparsable values as warnings with
    // exit status 0: any output at all is a finding.
    assert!(
        out.status.success() && stderr.trim().is_empty() && out.stdout.is_empty(),
        "systemd-analyze verify {unit}: {}\n{stderr}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A copy of `systemd/<file>` in `dir` naming the binary of this build.
fn copy_unit(dir: &Path, file: &str) -> String {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(file);
    let text = std::fs::read_to_string(&src).unwrap();
    assert!(
        text.contains(&format!("ExecStart={INSTALLED_BIN}")),
        "{} no longer starts {INSTALLED_BIN}; update this test",
        src.display()
    );
    let text = text.replace(INSTALLED_BIN, env!("CARGO_BIN_EXE_livestore-sync"));
    std::fs::write(dir.join(file), text).unwrap();
    file.to_string()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    // Removed however the test ends.
    struct TempDir(PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("lss-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());

    let single = copy_unit(&dir, "livestore-sync.service");
    verify(&dir, &single);

    let template = copy_unit(&dir, "livestore-sync@.service");
    verify(&dir, &template);
    // An instance: `%i` expanded to a port.
    std::os::unix::fs::symlink(&template, dir.join("livestore-sync@8001.service")).unwrap();
    verify(&dir, "livestore-sync@8001.service");
}

/// The template's command line, run with the example environment file
/// (which sets `PORT=8000`), listens on the port named by the instance:
/// systemd lets `EnvironmentFile=` override `Environment=`, so the port has
/// to be a flag, and a flag wins over the environment.
#[test]
fn an_instance_listens_on_the_port_of_its_name() {
    let _w = watchdog("unit_port", std::time::Duration::from_secs(60));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let unit = std::fs::read_to_string(root.join("livestore-sync@.service")).unwrap();
    let exec: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart: {exec:?}");
    let port = free_port();
    let mut argv = exec[0]
        .replace("%i", &port.to_string())
        .split_whitespace()
        .map(String::from)
        .collect::<Vec<_>>();
    assert_eq!(argv.remove(0), INSTALLED_BIN);

    let db = TestDb::create("unit_port");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livestore-sync"));
    cmd.args(&argv).env_clear();
    let example = std::fs::read_to_string(root.join("livestore-sync.env.example")).unwrap();
    let mut saw_port = false;
    for line in example.lines().filter(|l| !l.starts_with('#')) {
        if let Some((k, v)) = line.split_once('=') {
            saw_port |= k == "PORT";
            cmd.env(k, v);
        }
    }
    assert!(
        saw_port,
        "the example env file sets PORT (what this test is about)"
    );
    // The example's database and address are placeholders for a real host.
    cmd.env("DATABASE_URL", &db.url).env("HOST", "127.0.0.1");
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let stderr = child.stderr.take().unwrap();
    let listening = std::io::BufRead::lines(std::io::BufReader::new(stderr))
        .map_while(Result::ok)
        .find_map(|l| l.split("listening on ").nth(1).map(str::to_string));
    let _ = child.kill();
    let _ = child.wait();
    let listening = listening.expect("the server never said where it listens");
    assert!(
        listening.starts_with(&format!("127.0.0.1:{port}")),
        "instance {port} listens on {listening}"
    );
}
