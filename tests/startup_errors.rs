//! Start-up failures say what to do: the real binary, started with each
//! bad setting, exits non-zero with one message that names the address
//! (or file), the cause, and a hint pointing at a README section that
//! exists. Secrets in the settings never appear.
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Runs `cmd` to its exit: it must fail, and its stderr is returned.
fn refused(cmd: Command) -> String {
    let (status, stderr) = run_to_exit(cmd, Duration::from_secs(30));
    assert!(!status.success(), "it started: {status}\n{stderr}");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
    stderr
}

/// `text` has every part; and the README has the section the hint names.
fn says(stderr: &str, parts: &[&str]) {
    for p in parts {
        assert!(stderr.contains(p), "missing `{p}` in:\n{stderr}");
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut hinted = 0;
    for section in stderr.split("README, \"").skip(1) {
        let name = section.split('"').next().unwrap();
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == name),
            "the hint names README section \"{name}\", which README.md lacks"
        );
        hinted += 1;
    }
    assert!(hinted > 0, "no README hint in:\n{stderr}");
}

#[test]
fn postgresql_not_running() {
    let _w = watchdog("start_pg_refused", Duration::from_secs(60));
    let port = free_port(); // nothing listens there
    let mut cmd = server_command();
    cmd.args([
        "--database-url",
        &format!("postgresql://postgres:s3cret@127.0.0.1:{port}/livestore"),
    ]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused. "),
            "Is it running",
            "README, \"Getting a PostgreSQL\"",
        ],
    );
    assert!(!err.contains("s3cret"), "{err}");
}

#[test]
fn a_port_already_in_use() {
    let _w = watchdog("start_port_in_use", Duration::from_secs(60));
    let dir = TempDir::new("port_in_use");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url(), "--port", &port]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!("cannot listen on 127.0.0.1:{port}: address already in use. "),
            "Another process listens there",
            "PORT",
            "README, \"Configuration\"",
        ],
    );
}

#[test]
fn bad_database_urls() {
    let _w = watchdog("start_bad_url", Duration::from_secs(60));
    // A PostgreSQL URL that does not parse: shown without its password.
    let mut cmd = server_command();
    cmd.args([
        "--database-url",
        "postgresql://alice:s3cret@127.0.0.1:notaport/livestore",
    ]);
    let err = refused(cmd);
    says(
        &err,
        &[
            "DATABASE_URL postgresql://alice:***@127.0.0.1:notaport/livestore is not a valid PostgreSQL URL: ",
            "port",
            "postgresql://user:password@host:5432/database",
            "README, \"PostgreSQL\"",
        ],
    );
    assert!(!err.contains("s3cret"), "{err}");

    // Not a URL the server knows.
    let mut cmd = server_command();
    cmd.args(["--database-url", "mysql://alice:s3cret@db/livestore"]);
    let err = refused(cmd);
    says(
        &err,
        &[
            "DATABASE_URL must start with postgresql://, postgres:// or sqlite:",
            "got `mysql://…`",
            "README, \"Where the events live\"",
        ],
    );
    assert!(!err.contains("s3cret"), "{err}");
}

/// The server as a user who is not root (root may write anywhere and bind
/// any port): `nobody` when the tests run as root, else the tests' user.
/// The binary is copied where that user may run it.
fn unprivileged(dir: &TempDir) -> Command {
    use std::os::unix::fs::PermissionsExt as _;
    let bin = dir.path().join("livestore-sync");
    std::fs::copy(env!("CARGO_BIN_EXE_livestore-sync"), &bin).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["--host", "127.0.0.1", "--port", "0"])
        .current_dir(dir.path())
        .env("LOG_LEVEL", "info")
        .env_remove("DATABASE_URL")
        .env_remove("DATA_DIR")
        .env_remove("STATE_DIRECTORY");
    if is_root() {
        use std::os::unix::process::CommandExt as _;
        cmd.uid(NOBODY).gid(NOBODY);
    }
    cmd
}

const NOBODY: u32 = 65534;

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    // /proc/self belongs to the process's user.
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// A directory the unprivileged server may not write.
fn read_only_dir(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(path).unwrap();
    // Owned by root when the tests are root; else the mode keeps its owner out.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o555)).unwrap();
}

/// A directory the unprivileged server may write.
fn writable_dir(path: &Path) {
    std::fs::create_dir_all(path).unwrap();
    if is_root() {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    }
}

#[test]
fn a_data_directory_the_server_may_not_write() {
    let _w = watchdog("start_data_dir", Duration::from_secs(60));
    let dir = TempDir::new("data_dir_perm");
    let data = dir.path().join("data");
    read_only_dir(&data);

    // The directory exists: the lock file cannot be created in it.
    let mut cmd = unprivileged(&dir);
    cmd.args(["--data-dir", data.to_str().unwrap()]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!("{}/livestore.db-lock", data.display()),
            "ermission denied",
            "The server's user needs to create and write files there",
            "DATA_DIR",
            "README, \"Where the events live\"",
        ],
    );

    // It does not exist, and cannot be created.
    let missing = data.join("sub");
    let mut cmd = unprivileged(&dir);
    cmd.args(["--data-dir", missing.to_str().unwrap()]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!(
                "cannot create the data directory {}: permission denied. ",
                missing.display()
            ),
            "README, \"Where the events live\"",
        ],
    );
}

#[test]
fn a_privileged_port_without_the_capability() {
    let _w = watchdog("start_priv_port", Duration::from_secs(60));
    let start: u16 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        start > 1,
        "net.ipv4.ip_unprivileged_port_start is {start}: every port is unprivileged here, \
         so this test cannot show the refusal"
    );
    let port = (start - 1).to_string();
    let dir = TempDir::new("priv_port");
    let data = dir.path().join("data");
    writable_dir(&data);
    let mut cmd = unprivileged(&dir);
    cmd.args(["--data-dir", data.to_str().unwrap(), "--port", &port]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!("cannot listen on 127.0.0.1:{port}: permission denied. "),
            "CAP_NET_BIND_SERVICE",
            "README, \"Running under systemd\"",
        ],
    );
}

#[test]
fn a_sqlite_file_from_a_newer_version() {
    let _w = watchdog("start_newer_sqlite", Duration::from_secs(60));
    let dir = TempDir::new("newer_sqlite");
    {
        let c = rusqlite::Connection::open(dir.db()).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
    }
    let mut cmd = server_command();
    cmd.args(["--database-url", &dir.db_url()]);
    let err = refused(cmd);
    says(
        &err,
        &[
            &format!(
                "{} has schema version 99, newer than this livestore-sync knows",
                dir.db().canonicalize().unwrap().display()
            ),
            "run that one (or newer)",
            "README, \"Upgrading\"",
        ],
    );
}

#[test]
fn a_postgresql_database_from_a_newer_version() {
    let _w = watchdog("start_newer_pg", Duration::from_secs(60));
    let db = TestDb::create("newer_pg");
    db.client()
        .batch_execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY, \
             applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO schema_version (version) VALUES (1), (2), (99);",
        )
        .unwrap();
    let mut cmd = server_command();
    cmd.args(["--database-url", &db.url]);
    let err = refused(cmd);
    let name = db.url.rsplit('/').next().unwrap();
    says(
        &err,
        &[
            "PostgreSQL at ",
            &format!("/{name} has schema version 99, newer than this livestore-sync knows (2)"),
            "run that one (or newer)",
            "README, \"Upgrading\"",
        ],
    );
    // Refused before schema.sql ran: nothing of ours was created.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('stores', 'events')",
            &[]
        ),
        0
    );
}
