//! Every surface a peer can reach, held against what an attacker sends, end
//! to end against the real binary: the metrics port (a huge Content-Length,
//! an endless header, a head that trickles, 500 idle connections, a client
//! that never reads; hostile help text judged by the Prometheus project's own
//! `promtool`) and the control socket (`--control-socket` paths, stuck
//! action clients, escapes in `status`).

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario, http_get, proc_status_kib, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";
const CONSUMER: &str = "  - name: mod-dummy-consumer\n";

fn stop_cleanly(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "clean exit\n{}", orch.output());
}

/// Starts `scenario` and returns it with its metrics address, once its
/// modules started.
fn start_with_metrics(scenario: &Scenario) -> (OrchProcess, String) {
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    let line = orch.wait_for("[METRICS] serving http://", BUILD).unwrap();
    let address = line
        .text
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("an address")
        .to_owned();
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
    stop_cleanly(&mut orch);
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
    stop_cleanly(&mut orch);
}
