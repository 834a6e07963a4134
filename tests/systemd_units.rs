//! The committed systemd units pass `systemd-analyze verify`: the single
//! unit, its socket unit, and the per-port template (checked as the
//! template and as an instance, `livestore-sync@8001`). The units name the
//! installed binary (`/usr/local/bin/livestore-sync`), which verify
//! requires to exist, so each is checked as a copy naming the binary this
//! build made. Both services are hardened: `systemd-analyze security`
//! rates them at most 2.0. Without `systemd-analyze` the tests fail and
//! say what to install. (What the server does under systemd's protocols:
//! `tests/systemd_service.rs`.)
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const INSTALLED_BIN: &str = "/usr/local/bin/livestore-sync";

fn systemd_analyze() -> Command {
    Command::new("systemd-analyze")
}

fn verify(dir: &Path, unit: &str) {
    let out = systemd_analyze()
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

fn unit_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("systemd")
        .join(file)
}

/// A copy of `systemd/<file>` in `dir` naming the binary of this build.
fn copy_unit(dir: &Path, file: &str) -> String {
    let src = unit_path(file);
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
    // The socket unit, next to the service it activates.
    std::fs::copy(
        unit_path("livestore-sync.socket"),
        dir.join("livestore-sync.socket"),
    )
    .unwrap();
    verify(&dir, "livestore-sync.socket");

    let template = copy_unit(&dir, "livestore-sync@.service");
    verify(&dir, &template);
    // An instance: `%i` expanded to a port.
    std::os::unix::fs::symlink(&template, dir.join("livestore-sync@8001.service")).unwrap();
    verify(&dir, "livestore-sync@8001.service");
}

/// `systemd-analyze security --offline=true` of a committed unit: its
/// overall exposure (0.0 best, 10.0 worst) and the whole report.
fn exposure(file: &str) -> (f64, String) {
    let out = systemd_analyze()
        .args(["security", "--offline=true", "--no-pager"])
        .arg(unit_path(file))
        .output()
        .expect("run systemd-analyze security (apt-get install -y systemd)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let level = report
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{report}"));
    (level, report)
}

/// The hardening: both services rate 2.0 or better, and keep what the
/// server needs (the address families it opens; notify and a watchdog).
#[test]
fn the_services_are_hardened_to_an_exposure_of_at_most_2() {
    for file in ["livestore-sync.service", "livestore-sync@.service"] {
        let (level, report) = exposure(file);
        assert!(level <= 2.0, "{file}: exposure {level}\n{report}");
        let text = std::fs::read_to_string(unit_path(file)).unwrap();
        for line in [
            "Type=notify",
            "WatchdogSec=30",
            // TCP, and unix sockets: systemd's notify socket, PostgreSQL's.
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        ] {
            assert!(text.lines().any(|l| l == line), "{file} lacks `{line}`");
        }
    }
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
