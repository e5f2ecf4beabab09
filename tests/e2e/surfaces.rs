//! Every surface a peer can reach, held against what an attacker sends, end
//! to end against the real binary: the metrics port (a huge Content-Length,
//! an endless header, a head that trickles, 500 idle connections, a client
//! that never reads; hostile help text judged by the Prometheus project's own
//! `promtool`) and the control socket (`--control-socket` paths, stuck
//! action clients, escapes in `status`).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use orch_e2e::{
    OrchProcess, Scenario, http_get, orch_bin, proc_status_kib, wait_until, workspace_root,
};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";
const CONSUMER: &str = "  - name: mod-dummy-consumer\n";

/// Starts `scenario` and returns it with its metrics address, once its
/// modules started.
fn start_with_metrics(scenario: &Scenario) -> (OrchProcess, String) {
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    let address = orch.metrics_address(BUILD);
    orch.wait_for("app.started:", BUILD).unwrap();
    (orch, address)
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).expect("connect to the metrics port");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .expect("write timeout");
    stream
}

/// Reads the response's status code, then until the server closes (or
/// resets) the connection; `None` when it was reset before a status came.
fn status_then_close(stream: &mut TcpStream) -> Option<u16> {
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server neither answered nor closed: {e}"),
        }
    }
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
}

/// `/metrics` answers 200 with samples in it.
fn assert_scrapes(address: &str, when: &str) {
    let (code, body) = http_get(address, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{when}: {body}");
    assert!(body.contains("orch_module_up"), "{when}: {body}");
}

#[test]
fn the_metrics_port_holds_against_what_no_scraper_sends() {
    let scenario = Scenario::with_main(
        &format!("modules:\n{PRODUCER}{CONSUMER}"),
        "metrics:\n  listen: 0\n",
    );
    let (mut orch, address) = start_with_metrics(&scenario);

    // A head that trickles a byte a second is closed by the head deadline
    // (5 s); checked at the end, it runs meanwhile.
    let trickler = {
        let address = address.clone();
        std::thread::spawn(move || {
            let mut stream = connect(&address);
            let began = Instant::now();
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ");
            while began.elapsed() < Duration::from_secs(30) {
                if stream.write_all(b"a").is_err() {
                    break;
                }
                let mut byte = [0u8; 1];
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .expect("timeout");
                match stream.read(&mut byte) {
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                    Err(_) => {}
                }
            }
            began.elapsed()
        })
    };

    // A GET announcing a body of 1 TiB: refused at once, never allocated.
    let mut huge = connect(&address);
    huge.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1099511627776\r\n\r\n")
        .expect("send");
    assert_eq!(status_then_close(&mut huge), Some(413));
    assert_scrapes(&address, "after a huge Content-Length");

    // A header that never ends: cut at the head cap (431) and closed.
    let mut endless = connect(&address);
    endless
        .write_all(b"GET /metrics HTTP/1.1\r\nX-Endless: ")
        .expect("send");
    let chunk = [b'a'; 1024];
    let mut sent = 0usize;
    while sent < 16 << 20 && endless.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    assert!(
        sent < 16 << 20,
        "the server read a 16 MiB header without closing the connection"
    );
    let status = status_then_close(&mut endless);
    assert!(matches!(status, None | Some(431)), "{status:?}");
    assert_scrapes(&address, "after an endless header");

    // The trickled head was closed by the deadline, not before.
    let slow = trickler.join().expect("the trickling client");
    assert!(
        slow >= Duration::from_secs(4) && slow < Duration::from_secs(15),
        "a trickled head held its connection for {slow:?} (the head deadline is 5 s)"
    );

    // 500 idle connections: a scrape is still answered while they are open,
    // the oldest closed to make room past the cap of 256.
    let mut idle: Vec<TcpStream> = (0..500).map(|_| connect(&address)).collect();
    assert_scrapes(&address, "with 500 idle connections open");
    let mut byte = [0u8; 1];
    assert!(
        matches!(idle[0].read(&mut byte), Ok(0) | Err(_)),
        "the oldest idle connection was not closed past the cap"
    );

    // A client that sends requests and never reads the answers.
    let mut deaf = connect(&address);
    deaf.set_nonblocking(true).expect("non-blocking");
    let request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut requests = 0;
    let began = Instant::now();
    while requests < 20_000 && began.elapsed() < Duration::from_secs(5) {
        match deaf.write(request) {
            Ok(_) => requests += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => break,
        }
    }
    assert_scrapes(&address, "while a client does not read its answers");
    drop(idle);

    assert_scrapes(&address, "at the end");
    assert_eq!(http_get(&address, "/healthz").expect("GET").0, 200);
    let peak_kib = proc_status_kib(orch.pid(), "VmHWM");
    assert!(
        peak_kib > 0 && peak_kib < 256 * 1024,
        "the orchestrator peaked at {peak_kib} KiB"
    );
    drop(deaf);
    orch.stop_cleanly();
}

#[test]
fn promtool_passes_the_exposition_whatever_help_text_modules_register() {
    let promtool = match orch_e2e::promtool::promtool_binary() {
        Ok(promtool) => promtool,
        Err(e) => {
            eprintln!("SKIPPED: no promtool here ({e})");
            return;
        }
    };
    let help =
        "\"two\\nlines, a back\\\\slash, \\\"quotes\\\", \\e[31mred\\e[0m and \\r a return\"";
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{PRODUCER}  - name: hostile-a\n    package: fixture-metrics\n    \
             config:\n      help: {help}\n  - name: hostile-b\n    package: fixture-metrics\n    \
             isolation: process\n    config:\n      help: {help}\n"
        ),
        "metrics:\n  listen: 0\n",
    );
    let (mut orch, address) = start_with_metrics(&scenario);
    let mut exposition = String::new();
    wait_until("both modules' hostile metric is scraped", SHORT, || {
        exposition = http_get(&address, "/metrics").expect("GET /metrics").1;
        ["hostile-a", "hostile-b"]
            .iter()
            .all(|m| exposition.contains(&format!("fixture_hostile_total{{module=\"{m}\"}}")))
    });
    assert!(
        exposition.contains("# HELP fixture_hostile_total two\\nlines, a back\\\\slash"),
        "{exposition}"
    );
    if let Err(e) = orch_e2e::promtool::check_metrics(&promtool, &exposition) {
        panic!("{e:#}\n--- exposition ---\n{exposition}");
    }
    orch.stop_cleanly();
}

/// `cargo-orch orch <args>` run from `dir`, for the workspace of this repository.
fn orch_in(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(orch_bin());
    command
        .current_dir(dir)
        .arg("orch")
        .arg("--manifest-path")
        .arg(workspace_root().join("Cargo.toml"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    command
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn control_socket_paths_never_replace_a_users_file_or_folder_mode() {
    let scenario = Scenario::new(&format!("modules:\n{CONSUMER}"));
    let config = scenario.config_dir().to_str().expect("utf-8").to_owned();
    let here = tempfile::tempdir().expect("temp dir");
    let sub = here.path().join("sub");
    std::fs::create_dir(&sub).expect("sub");
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let users = sub.join("config.yaml");
    std::fs::write(&users, "app: mine\n").expect("the user's file");

    // A path that holds a file of the user's: refused, the file and the
    // folder's mode as they were.
    let mut refused = OrchProcess::spawn(orch_in(
        here.path(),
        &[
            "run",
            "--config-dir",
            &config,
            "--control-socket",
            "sub/config.yaml",
        ],
    ))
    .expect("spawn");
    let status = refused.wait_exit(BUILD);
    let said = refused.output();
    assert!(
        status.as_ref().is_ok_and(|s| !s.success()),
        "{status:?}\n{said}"
    );
    assert!(said.contains("exists and is not a socket"), "{said}");
    assert_eq!(
        std::fs::read_to_string(&users).expect("kept"),
        "app: mine\n"
    );
    assert_eq!(mode(&sub), 0o755, "the folder's mode was changed");

    // A bare relative name works from the current folder; a folder that
    // exists keeps its mode, one created for the socket is owner-only.
    std::fs::set_permissions(here.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut orch = OrchProcess::spawn(orch_in(
        here.path(),
        &[
            "run",
            "--config-dir",
            &config,
            "--control-socket",
            "orch.sock",
        ],
    ))
    .expect("spawn");
    orch.wait_for("app.started:", BUILD).unwrap();
    let socket = here.path().join("orch.sock");
    assert!(
        orch_e2e_is_socket(&socket),
        "no socket at {}",
        socket.display()
    );
    let status = orch_in(here.path(), &["status", "--socket", "orch.sock"])
        .output()
        .expect("status");
    assert!(status.status.success(), "{status:?}");
    assert_eq!(
        mode(here.path()),
        0o755,
        "the current folder's mode was changed"
    );
    orch.stop_cleanly();
    assert!(!socket.exists(), "the socket is removed at exit");

    let mut orch = OrchProcess::spawn(orch_in(
        here.path(),
        &[
            "run",
            "--config-dir",
            &config,
            "--control-socket",
            "new/deeper/orch.sock",
        ],
    ))
    .expect("spawn");
    orch.wait_for("app.started:", BUILD).unwrap();
    assert_eq!(mode(&here.path().join("new/deeper")), 0o700);
    orch.stop_cleanly();
}

fn orch_e2e_is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[test]
fn an_entry_file_that_names_a_users_file_does_not_get_it_deleted() {
    let victim_dir = tempfile::tempdir().expect("temp dir");
    let victim = victim_dir.path().join("precious.txt");
    std::fs::write(&victim, "keep").expect("victim");
    let registry = orch_e2e::target_dir().join("orch").join("control");
    std::fs::create_dir_all(&registry).expect("registry folder");
    // A dead pid, and a socket path that climbs out of the registry folder
    // to the root and down to the victim.
    let registry = registry.canonicalize().expect("canonical");
    let mut climbing = registry.clone();
    for _ in registry.components().skip(1) {
        climbing.push("..");
    }
    let victim = victim.canonicalize().expect("canonical");
    climbing.push(victim.strip_prefix("/").expect("absolute"));
    assert!(climbing.starts_with(&registry));
    let entry = registry.join(format!("{}.json", i32::MAX - 7));
    std::fs::write(
        &entry,
        serde_json::json!({
            "pid": i32::MAX - 7, "socket": climbing, "app": "forged",
            "config_dir": "config", "environment": null
        })
        .to_string(),
    )
    .expect("forged entry");
    let _ = orch_in(workspace_root(), &["status", "--json"])
        .output()
        .expect("status");
    assert!(!entry.exists(), "the dead entry is cleaned up");
    assert_eq!(std::fs::read_to_string(&victim).expect("kept"), "keep");
}

/// Sends `request` as one raw line on a new connection, without reading.
fn send_only(socket: &Path, request: &str) -> UnixStream {
    let mut stream = UnixStream::connect(socket).expect("connect");
    stream
        .write_all(format!("{request}\n").as_bytes())
        .expect("write");
    stream
}

#[test]
fn stuck_action_clients_never_lock_status_out_and_control_output_is_escaped() {
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{CONSUMER}  - name: fixture-slow-build\n    config:\n      \
             init_delay_ms: 4000\n  - name: fixture-panic-init\n    restart: never\n    \
             config:\n      message: \"boom \\e[2J\\e[31mred\\nok    forged line\"\n"
        ),
        "timeouts:\n  initialize: 30s\n",
    );
    let here = tempfile::tempdir().expect("temp dir");
    let socket = here.path().join("orch.sock");
    let mut command = scenario.command(&["run"]);
    command.arg("--control-socket").arg(&socket);
    let mut orch = OrchProcess::spawn(command).expect("spawn");
    orch.wait_for("app.started:", BUILD).unwrap();

    // The status table and the JSON carry the module's text, never its
    // escape codes raw.
    let table = Command::new(orch_bin())
        .current_dir(workspace_root())
        .args(["orch", "status", "--socket"])
        .arg(&socket)
        .output()
        .expect("status");
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    assert!(table.contains("boom \\u{1b}[2J"), "{table}");
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(!table.lines().any(|l| l.starts_with("ok")), "{table}");

    // Hold the main loop: each restart of the slow module takes 4 s.
    let slow = "{\"command\":\"restart\",\"module\":\"fixture-slow-build\"}";
    let waiting: Vec<UnixStream> = (0..8).map(|_| send_only(&socket, slow)).collect();
    std::thread::sleep(Duration::from_millis(500));
    for round in 0..3 {
        let began = Instant::now();
        let status = Command::new(orch_bin())
            .current_dir(workspace_root())
            .args(["orch", "status", "--json", "--socket"])
            .arg(&socket)
            .output()
            .expect("status");
        assert!(
            status.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "status took {:?} behind 8 waiting actions",
            began.elapsed()
        );
    }
    let ninth = Command::new(orch_bin())
        .current_dir(workspace_root())
        .args(["orch", "stop", "mod-dummy-consumer", "--socket"])
        .arg(&socket)
        .output()
        .expect("stop");
    let said = String::from_utf8_lossy(&ninth.stderr).into_owned();
    assert!(said.contains("already wait"), "{said}");
    // Every waiting client hangs up: the actions not yet begun are skipped.
    drop(waiting);
    orch.wait_for("skipped: its client hung up", Duration::from_secs(30))
        .unwrap();
    orch.stop_cleanly();

    // `cargo orch check` prints the same failure escaped, with no line of
    // the module's own.
    let check = scenario.command(&["check"]).output().expect("check");
    let out = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(out.contains("FAIL"), "{out}");
    assert!(!out.contains('\u{1b}'), "{out:?}");
    assert!(!out.lines().any(|l| l.starts_with("ok    forged")), "{out}");
}

/// With its file descriptors capped (`prlimit --nofile`), connections beyond
/// what the orchestrator can open make `accept` fail: the failure is logged
/// and the port keeps serving once the connections are gone.
#[test]
fn accept_errors_are_survived_and_logged() {
    let scenario = Scenario::with_main(&format!("modules:\n{CONSUMER}"), "metrics:\n  listen: 0\n");
    let mut command = Command::new("prlimit");
    command
        .current_dir(workspace_root())
        .args(["--nofile=128:128", "--"])
        .arg(orch_bin())
        .args(["orch", "run", "--config-dir"])
        .arg(scenario.config_dir())
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "info");
    let mut orch = OrchProcess::spawn(command).expect("spawn under prlimit");
    let address = orch.metrics_address(BUILD);
    orch.wait_for("app.started:", BUILD).unwrap();
    let socket: std::net::SocketAddr = address.parse().expect("an address");
    let held: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&socket, Duration::from_millis(500)).ok())
        .collect();
    orch.wait_for("[METRICS] cannot accept a connection", SHORT)
        .unwrap();
    drop(held);
    wait_until("/metrics answers again", SHORT, || {
        http_get(&address, "/metrics").is_ok_and(|(code, _)| code == 200)
    });
    orch.stop_cleanly();
}
