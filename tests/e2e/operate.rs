//! Operating a running orchestrator, end to end against real processes:
//! `cargo orch status` in both formats while a module reloads and after one
//! crashed; `restart`, `stop` and `start` of an isolated and an in-process
//! module; two orchestrators at once; the socket's permissions; `/metrics`
//! scraped and read with the Prometheus project's own Python parser;
//! `/readyz` flipping; webhook alerts with a retry; environment overlays.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Receiver, Scenario, http_get, orch_bin, wait_until, workspace_root};
use serde_json::Value;

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(20);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";
const CONSUMER: &str = "  - name: mod-dummy-consumer\n";

/// Starts `cargo orch run` and waits until its modules started.
fn start(scenario: &Scenario) -> OrchProcess {
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn cargo-orch");
    orch.wait_for("[CONTROL] control socket", BUILD).unwrap();
    orch.wait_for("app.started:", BUILD).unwrap();
    orch
}

fn stop_cleanly(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "clean exit\n{}", orch.output());
}

/// `cargo-orch orch <args>` in the workspace, as an operator runs it.
fn control(args: &[&str]) -> Command {
    let mut command = Command::new(orch_bin());
    command
        .current_dir(workspace_root())
        .arg("orch")
        .args(args)
        .env("NO_COLOR", "1");
    command
}

fn run(args: &[&str], pid: u32) -> Output {
    let pid = pid.to_string();
    let mut all = args.to_vec();
    all.extend(["--pid", &pid]);
    control(&all).output().expect("run cargo-orch")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `status --json` report of orchestrator `pid`.
fn status(pid: u32) -> Value {
    let output = run(&["status", "--json"], pid);
    assert!(output.status.success(), "status failed: {}", text(&output));
    let reports: Value = serde_json::from_slice(&output.stdout).expect("status --json is JSON");
    reports[0].clone()
}

fn module(report: &Value, name: &str) -> Value {
    report["modules"]
        .as_array()
        .and_then(|modules| modules.iter().find(|m| m["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("no row for '{name}' in {report:#}"))
}

fn alive(pid: u64) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

#[test]
fn status_shows_a_reload_in_progress_and_a_crash_in_both_formats() {
    let scenario = Scenario::with_timeouts(
        &format!(
            "modules:\n{PRODUCER}  - name: fixture-slow-build\n    config:\n      \
             init_delay_ms: 2500\n  - name: fixture-crash\n    isolation: process\n    \
             restart: never\n    config:\n      fault: abort\n      crash_after: 3\n"
        ),
        "15s",
    );
    let mut orch = start(&scenario);
    let pid = orch.pid();
    orch.wait_for("[FAILED] module 'fixture-crash'", SHORT)
        .unwrap();

    let report = status(pid);
    assert_eq!(report["pid"], pid);
    assert_eq!(report["ready"], false, "a failed module: not ready");
    let crash = module(&report, "fixture-crash");
    assert_eq!(crash["state"], "failed", "{crash:#}");
    assert_eq!(crash["isolation"], "process");
    assert_eq!(crash["crashes"], 1);
    assert_eq!(crash["last_error"]["phase"], "crash");
    let message = crash["last_error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SIGABRT"), "{message}");
    assert_eq!(module(&report, "mod-dummy-producer")["state"], "running");
    let table = text(&run(&["status"], pid));
    let crash_row = table
        .lines()
        .find(|line| line.starts_with("fixture-crash"))
        .unwrap_or_else(|| panic!("no fixture-crash row in\n{table}"));
    assert!(
        crash_row.contains("failed")
            && crash_row.contains("crash:")
            && crash_row.contains("SIGABRT"),
        "{crash_row}"
    );
    assert!(
        table.contains("MODULE") && table.contains("LAST ERROR"),
        "{table}"
    );
    assert!(table.contains(&format!("pid {pid}")), "{table}");

    // A reload whose new generation initializes for 2.5 s: seen while it runs.
    let reload = control(&["reload", "fixture-slow-build", "--pid", &pid.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn reload");
    let mut seen_reloading = false;
    let until = Instant::now() + BUILD;
    while Instant::now() < until && !seen_reloading {
        let row = module(&status(pid), "fixture-slow-build");
        seen_reloading = row["state"] == "reloading";
        if seen_reloading {
            assert_eq!(row["generation"], 1, "the old generation runs meanwhile");
            let table = text(&run(&["status"], pid));
            assert!(
                table
                    .lines()
                    .any(|l| l.starts_with("fixture-slow-build") && l.contains("reloading")),
                "{table}"
            );
        } else {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        seen_reloading,
        "status never showed the reload\n{}",
        orch.output()
    );
    let reloaded = reload.wait_with_output().expect("reload ends");
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    assert!(
        text(&reloaded).contains("generation 2"),
        "{}",
        text(&reloaded)
    );
    let row = module(&status(pid), "fixture-slow-build");
    assert_eq!(
        (&row["state"], &row["generation"], &row["reloads"]),
        (&"running".into(), &2.into(), &1.into())
    );
    stop_cleanly(&mut orch);
}

#[test]
fn restart_stop_and_start_of_an_isolated_and_an_in_process_module() {
    let scenario = Scenario::new(&format!(
        "modules:\n{PRODUCER}{CONSUMER}  - name: fixture-crash\n    isolation: process\n"
    ));
    let mut orch = start(&scenario);
    let pid = orch.pid();
    let child = module(&status(pid), "fixture-crash")["pid"]
        .as_u64()
        .expect("an isolated module has a child pid");
    assert!(alive(child));

    // Isolated: a new child process, and it gets events again.
    let restarted = run(&["restart", "fixture-crash"], pid);
    assert!(restarted.status.success(), "{}", text(&restarted));
    let row = module(&status(pid), "fixture-crash");
    let new_child = row["pid"].as_u64().expect("a new child");
    assert_ne!(new_child, child);
    assert!(
        text(&restarted).contains(&format!("child pid {new_child}")),
        "{}",
        text(&restarted)
    );
    assert_eq!(row["restarts"], 1);
    wait_until("the old child is gone", SHORT, || !alive(child));
    let before = module(&status(pid), "fixture-crash")["events_in"]
        .as_u64()
        .unwrap_or(0);
    wait_until("the restarted child gets pings", SHORT, || {
        module(&status(pid), "fixture-crash")["events_in"]
            .as_u64()
            .unwrap_or(0)
            > before
    });

    // Stop and start it: no child while stopped.
    let stopped = run(&["stop", "fixture-crash"], pid);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let row = module(&status(pid), "fixture-crash");
    assert_eq!(row["state"], "stopped");
    assert_eq!(row["pid"], Value::Null);
    wait_until("the child is gone", SHORT, || !alive(new_child));
    let again = run(&["stop", "fixture-crash"], pid);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        text(&again).contains("is not running (stopped)"),
        "{}",
        text(&again)
    );
    let started = run(&["start", "fixture-crash"], pid);
    assert!(started.status.success(), "{}", text(&started));
    assert!(
        module(&status(pid), "fixture-crash")["pid"]
            .as_u64()
            .is_some()
    );

    // In-process: stop, start, restart; its counts keep growing across them.
    let stopped = run(&["stop", "mod-dummy-consumer"], pid);
    assert!(stopped.status.success(), "{}", text(&stopped));
    let row = module(&status(pid), "mod-dummy-consumer");
    assert_eq!(row["state"], "stopped");
    let received = row["events_in"].as_u64().unwrap_or(0);
    let twice = run(&["start", "mod-dummy-producer"], pid);
    assert_eq!(twice.status.code(), Some(2), "{}", text(&twice));
    assert!(text(&twice).contains("already running"), "{}", text(&twice));
    let started = run(&["start", "mod-dummy-consumer"], pid);
    assert!(started.status.success(), "{}", text(&started));
    wait_until("the consumer gets pings again", SHORT, || {
        module(&status(pid), "mod-dummy-consumer")["events_in"]
            .as_u64()
            .unwrap_or(0)
            > received
    });
    let restarted = run(&["restart", "mod-dummy-consumer"], pid);
    assert!(restarted.status.success(), "{}", text(&restarted));
    let row = module(&status(pid), "mod-dummy-consumer");
    assert_eq!(
        (&row["state"], &row["restarts"]),
        (&"running".into(), &1.into())
    );

    let unknown = run(&["restart", "mod-nope"], pid);
    assert_eq!(unknown.status.code(), Some(2), "{}", text(&unknown));
    assert!(
        text(&unknown).contains("no module named 'mod-nope'")
            && text(&unknown).contains("mod-dummy-consumer"),
        "{}",
        text(&unknown)
    );
    stop_cleanly(&mut orch);
}

#[test]
fn two_orchestrators_at_once_are_told_apart_by_pid() {
    let first = Scenario::new(&format!("modules:\n{PRODUCER}"));
    let second = Scenario::new(&format!("modules:\n{PRODUCER}{CONSUMER}"));
    let mut a = start(&first);
    let mut b = start(&second);
    let all = control(&["status"]).output().expect("status");
    assert!(all.status.success(), "{}", text(&all));
    for pid in [a.pid(), b.pid()] {
        assert!(text(&all).contains(&format!("pid {pid}")), "{}", text(&all));
    }
    let ambiguous = control(&["stop", "mod-dummy-producer"])
        .output()
        .expect("stop");
    assert_eq!(ambiguous.status.code(), Some(2), "{}", text(&ambiguous));
    assert!(
        text(&ambiguous).contains("orchestrators run in this workspace")
            && text(&ambiguous).contains("--pid")
            && text(&ambiguous).contains(&a.pid().to_string()),
        "{}",
        text(&ambiguous)
    );
    let stopped = run(&["stop", "mod-dummy-producer"], a.pid());
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_eq!(
        module(&status(a.pid()), "mod-dummy-producer")["state"],
        "stopped"
    );
    assert_eq!(
        module(&status(b.pid()), "mod-dummy-producer")["state"],
        "running"
    );
    assert_eq!(status(b.pid())["modules"].as_array().map(Vec::len), Some(2));
    stop_cleanly(&mut a);
    stop_cleanly(&mut b);
}

#[test]
fn the_control_socket_is_owner_only_named_in_the_log_and_removed_at_exit() {
    let scenario = Scenario::new(&format!("modules:\n{PRODUCER}"));
    let mut orch = start(&scenario);
    let line = orch.wait_for("[CONTROL] control socket", SHORT).unwrap();
    let entry_file = orch_e2e::target_dir()
        .join("orch/control")
        .join(format!("{}.json", orch.pid()));
    let entry: Value =
        serde_json::from_slice(&std::fs::read(&entry_file).expect("entry file")).expect("JSON");
    let socket = PathBuf::from(entry["socket"].as_str().expect("a socket path"));
    assert!(
        line.text.contains(&socket.display().to_string()),
        "{}",
        line.text
    );
    let mode = |path: &PathBuf| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&socket), 0o600, "{}", socket.display());
    assert_eq!(
        mode(&socket.parent().expect("a folder").to_path_buf()),
        0o700
    );
    stop_cleanly(&mut orch);
    assert!(!socket.exists(), "the socket is removed at exit");
    assert!(!entry_file.exists(), "the entry is removed at exit");
    let gone = run(&["status"], orch.pid());
    assert_ne!(gone.status.code(), Some(0), "{}", text(&gone));
    assert!(
        text(&gone).contains("no orchestrator with pid")
            || text(&gone).contains("no cargo orch run is running"),
        "{}",
        text(&gone)
    );
    let nowhere = control(&["status", "--socket", "/nonexistent/orch.sock"])
        .output()
        .expect("status");
    assert_eq!(nowhere.status.code(), Some(1), "{}", text(&nowhere));
    assert!(
        text(&nowhere).contains("cannot connect to /nonexistent/orch.sock"),
        "{}",
        text(&nowhere)
    );
    assert!(!text(&nowhere).contains("panicked"), "{}", text(&nowhere));
}

#[test]
fn metrics_are_scraped_and_parsed_grow_between_scrapes_and_readyz_flips() {
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{PRODUCER}{CONSUMER}  - name: fixture-slow-build\n    config:\n      \
             init_delay_ms: 3000\n  - name: fixture-crash\n    isolation: process\n    \
             restart: never\n    config:\n      fault: abort\n      crash_after: 80\n"
        ),
        "timeouts:\n  initialize: 10s\n  build: 10m\nmetrics:\n  listen: 0\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    let address = orch.metrics_address(BUILD);
    // `metrics:` needs the network parts: the lean cargo-orch handed the run
    // over to orch-networked, in the same process.
    orch.wait_for("continuing in orch-networked", SHORT)
        .unwrap();
    let program =
        std::fs::read_link(format!("/proc/{}/exe", orch.pid())).expect("read /proc/PID/exe");
    assert_eq!(
        program.file_name(),
        Some("orch-networked".as_ref()),
        "{}",
        program.display()
    );
    // Served before the modules start: live, not ready while one initializes.
    assert_eq!(http_get(&address, "/healthz").expect("GET").0, 200);
    let (code, body) = http_get(&address, "/readyz").expect("GET");
    assert_eq!(code, 503, "{body}");
    orch.wait_for("app.started:", BUILD).unwrap();
    wait_until("/readyz says ready", SHORT, || {
        http_get(&address, "/readyz").is_ok_and(|(code, _)| code == 200)
    });

    let (code, first) = http_get(&address, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{first}");
    std::thread::sleep(Duration::from_millis(1500));
    let (_, second) = http_get(&address, "/metrics").expect("GET /metrics");
    let (first, second) = (
        orch_e2e::parse_prometheus(&first),
        orch_e2e::parse_prometheus(&second),
    );
    let value = |scrape: &HashMap<String, f64>, key: &str| {
        *scrape
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {scrape:#?}"))
    };
    for key in [
        "orch_module_events_published_total{module=\"mod-dummy-producer\"}",
        "orch_module_events_received_total{module=\"mod-dummy-consumer\"}",
        "orch_module_handler_duration_seconds_count{module=\"mod-dummy-consumer\"}",
    ] {
        assert!(
            value(&second, key) > value(&first, key),
            "{key} did not grow"
        );
    }
    assert_eq!(
        value(
            &second,
            "orch_module_mailbox_capacity{module=\"mod-dummy-consumer\"}"
        ),
        10000.0
    );
    assert_eq!(
        value(&second, "orch_module_up{module=\"fixture-slow-build\"}"),
        1.0
    );
    assert!(
        value(
            &second,
            "orch_module_mailbox_depth{module=\"mod-dummy-consumer\"}"
        ) >= 0.0
    );
    assert!(value(&second, "process_resident_memory_bytes") > 1e6);
    assert!(value(&second, "process_threads") >= 4.0);
    assert_eq!(value(&second, "orch_ready"), 1.0);
    assert!(
        second.contains_key(
            "orch_module_handler_duration_seconds_bucket{le=\"+Inf\",module=\"mod-dummy-consumer\"}"
        ),
        "{second:#?}"
    );

    orch.wait_for("[FAILED] module 'fixture-crash'", Duration::from_secs(60))
        .unwrap();
    wait_until("/readyz says not ready", SHORT, || {
        http_get(&address, "/readyz").is_ok_and(|(code, _)| code == 503)
    });
    let (_, third) = http_get(&address, "/metrics").expect("GET /metrics");
    let third = orch_e2e::parse_prometheus(&third);
    assert_eq!(
        value(
            &third,
            "orch_module_crashes_total{module=\"fixture-crash\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&third, "orch_module_up{module=\"fixture-crash\"}"),
        0.0
    );
    assert_eq!(value(&third, "orch_ready"), 0.0);
    assert_eq!(http_get(&address, "/nope").expect("GET").0, 404);
    stop_cleanly(&mut orch);
}

#[test]
fn a_webhook_alert_reaches_a_local_server_after_a_retry_past_a_500() {
    let receiver = Receiver::start(vec![500, 200], Duration::from_secs(300)).expect("receiver");
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{PRODUCER}  - name: fixture-crash\n    isolation: process\n    \
             restart: never\n    config:\n      fault: abort\n      crash_after: 3\n"
        ),
        &format!(
            "notify:\n  webhook:\n    url: {}/alerts\n    events: [module.crashed]\n    \
             retries: 3\n",
            receiver.url()
        ),
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    orch.wait_for("[FAILED] module 'fixture-crash'", BUILD)
        .unwrap();
    wait_until("the retry reached the receiver", SHORT, || {
        receiver.received().len() >= 2
    });
    let received = receiver.received();
    assert_eq!(received.len(), 2, "one alert, sent twice: {received:#?}");
    assert_eq!((received[0].answered, received[1].answered), (500, 200));
    for request in &received {
        assert_eq!(request.request_line, "POST /alerts HTTP/1.1");
        let body: Value = serde_json::from_str(&request.body).expect("a JSON body");
        assert_eq!(body["topic"], "module.crashed", "{body:#}");
        assert_eq!(body["event"]["name"], "fixture-crash", "{body:#}");
        assert_eq!(body["app"], "e2e");
        assert_eq!(body["pid"], orch.pid());
    }
    orch.wait_for(
        "[NOTIFY] alert 'module.crashed' not delivered (HTTP 500)",
        SHORT,
    )
    .unwrap();
    stop_cleanly(&mut orch);
}

/// A module stopped with `cargo orch stop` under `--watch` stays stopped
/// when modules.yaml is edited (the edit would otherwise see it as added);
/// `start` brings it back.
#[test]
fn a_module_the_operator_stopped_stays_stopped_across_edits_of_modules_yaml() {
    let scenario = Scenario::new(&format!("modules:\n{PRODUCER}{CONSUMER}"));
    let mut orch = OrchProcess::spawn(scenario.command(&["run", "--watch"])).expect("spawn");
    orch.wait_for("app.started:", BUILD).unwrap();
    let pid = orch.pid();
    let stopped = run(&["stop", "mod-dummy-consumer"], pid);
    assert!(stopped.status.success(), "{}", text(&stopped));
    std::fs::write(
        scenario.config_dir().join("modules.yaml"),
        format!(
            "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 70ms\n\
             {CONSUMER}"
        ),
    )
    .expect("edit modules.yaml");
    orch.wait_for("[RELOAD] module 'mod-dummy-consumer' stays stopped", SHORT)
        .unwrap();
    orch.wait_for("[RELOAD] module 'mod-dummy-producer' re-initialized", SHORT)
        .unwrap();
    assert_eq!(
        module(&status(pid), "mod-dummy-consumer")["state"],
        "stopped"
    );
    let started = run(&["start", "mod-dummy-consumer"], pid);
    assert!(started.status.success(), "{}", text(&started));
    assert_eq!(
        module(&status(pid), "mod-dummy-consumer")["state"],
        "running"
    );
    stop_cleanly(&mut orch);
}

#[test]
fn an_environment_overlay_changes_a_module_config_and_a_bad_one_is_refused_with_file_and_line() {
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-slow-build\n    config:\n      init_delay_ms: 10\n      \
         kept: true\n",
    );
    let fast = scenario.config_dir().join("slowly");
    std::fs::create_dir(&fast).expect("mkdir");
    std::fs::write(
        fast.join("modules.yaml"),
        "modules:\n  - name: fixture-slow-build\n    config:\n      init_delay_ms: 1234\n",
    )
    .expect("write overlay");
    let mut orch = OrchProcess::spawn(scenario.command(&["run", "--watch", "--env", "slowly"]))
        .expect("spawn");
    orch.wait_for("environment 'slowly'", BUILD).unwrap();
    orch.wait_for("initializing slowly: 1234 ms", BUILD)
        .unwrap();
    orch.wait_for("app.started:", BUILD).unwrap();
    assert_eq!(status(orch.pid())["environment"], "slowly");
    // A saved edit of the overlay is applied live, like one of the base file.
    std::fs::write(
        fast.join("modules.yaml"),
        "modules:\n  - name: fixture-slow-build\n    config:\n      init_delay_ms: 777\n",
    )
    .expect("edit overlay");
    orch.wait_for("initializing slowly: 777 ms", SHORT).unwrap();
    stop_cleanly(&mut orch);

    let listed = scenario
        .command(&["list", "--env", "slowly", "--json"])
        .output()
        .expect("list");
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    assert_eq!(listed["environment"], "slowly", "{listed}");
    let plain = scenario
        .command(&["list", "--json"])
        .output()
        .expect("list");
    let plain: serde_json::Value = serde_json::from_slice(&plain.stdout).expect("json");
    assert!(plain["environment"].is_null(), "{plain}");
    let table = scenario
        .command(&["list", "--env", "slowly"])
        .output()
        .expect("list");
    assert!(
        text(&table).contains("environment 'slowly': ")
            && text(&table).contains("/slowly/ layered over "),
        "{}",
        text(&table)
    );

    let broken = scenario.config_dir().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    std::fs::write(
        broken.join("main.yaml"),
        "# prod\ntimeouts:\n  build: soon\n",
    )
    .expect("write");
    let output = scenario
        .command(&["check", "--env", "broken"])
        .output()
        .expect("check");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let where_ = format!("{}:3", broken.join("main.yaml").display());
    assert!(
        text(&output).contains(&where_),
        "{where_} in\n{}",
        text(&output)
    );

    let missing = scenario
        .command(&["check", "--env", "slowy"])
        .output()
        .expect("check");
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing));
    assert!(
        text(&missing).contains("slowly"),
        "a did-you-mean: {}",
        text(&missing)
    );
}

#[test]
fn a_modules_own_metrics_are_scraped_in_process_and_isolated_and_survive_a_reload() {
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{PRODUCER}  - name: metrics-a\n    package: fixture-metrics\n  \
             - name: metrics-b\n    package: fixture-metrics\n    isolation: process\n    \
             heartbeat: 200ms\n"
        ),
        "metrics:\n  listen: 0\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    let address = orch.metrics_address(BUILD);
    orch.wait_for("app.started:", BUILD).unwrap();
    let refused = orch.wait_for("refused as it should be", SHORT).unwrap();
    assert!(
        refused.text.contains("metric 'orch_forged'") && refused.text.contains("host's"),
        "{}",
        refused.text
    );
    let scrape =
        || orch_e2e::parse_prometheus(&http_get(&address, "/metrics").expect("GET /metrics").1);
    let value = |scrape: &HashMap<String, f64>, key: &str| scrape.get(key).copied();
    wait_until("both modules' metrics are scraped", SHORT, || {
        let s = scrape();
        ["metrics-a", "metrics-b"].iter().all(|m| {
            value(&s, &format!("fixture_pings_total{{module=\"{m}\"}}")).is_some_and(|v| v > 0.0)
        })
    });
    let first = scrape();
    std::thread::sleep(Duration::from_millis(1200));
    let second = scrape();
    for module in ["metrics-a", "metrics-b"] {
        for name in ["fixture_pings_total", "fixture_thread_ticks_total"] {
            let key = format!("{name}{{module=\"{module}\"}}");
            let (before, after) = (value(&first, &key), value(&second, &key));
            assert!(
                matches!((before, after), (Some(b), Some(a)) if a > b),
                "{key} did not grow: {before:?} -> {after:?}"
            );
        }
        let seq = value(&second, &format!("fixture_last_seq{{module=\"{module}\"}}"));
        assert!(seq.is_some_and(|s| s >= 1.0), "{module}: last seq {seq:?}");
    }
    assert!(!second.keys().any(|k| k.starts_with("orch_forged")));
    let timed = "orch_module_handler_duration_seconds_count{module=\"metrics-b\"}";
    assert!(
        value(&second, timed).is_some_and(|n| n > 0.0),
        "the isolated module's handler is timed in its child: {:?}",
        value(&second, timed)
    );

    // A reload registers the same names again: the counts go on, not from 0.
    let key = "fixture_pings_total{module=\"metrics-a\"}";
    let before = value(&scrape(), key).unwrap_or(0.0);
    let reloaded = run(&["reload", "metrics-a"], orch.pid());
    assert!(reloaded.status.success(), "{}", text(&reloaded));
    let after = value(&scrape(), key).unwrap_or(0.0);
    assert!(after >= before, "{key} went back: {before} -> {after}");
    stop_cleanly(&mut orch);
}

#[test]
fn a_child_that_floods_or_forges_metrics_frames_costs_the_host_a_bounded_share_or_its_life() {
    let scenario = Scenario::with_main(
        &format!(
            "modules:\n{PRODUCER}  - name: fixture-liar\n    isolation: process\n    \
             config:\n      lie: metrics\n  - name: forger\n    package: fixture-liar\n    \
             isolation: process\n    restart: never\n    config:\n      lie: metrics-count\n"
        ),
        "metrics:\n  listen: 0\n",
    );
    let mut orch = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    let address = orch.metrics_address(BUILD);
    // Well-formed frames, far too many: the rest of the second is dropped.
    orch.wait_for("[fixture-liar] LIAR writes unsolicited metrics", BUILD)
        .unwrap();
    let dropped = orch
        .wait_for("more metrics frames than 20 a second; the rest", SHORT)
        .unwrap();
    assert!(
        dropped.text.contains("module 'fixture-liar'"),
        "{}",
        dropped.text
    );
    let refused = orch
        .wait_for("a metric of its child is refused", SHORT)
        .unwrap();
    assert!(refused.text.contains("orch_forged"), "{}", refused.text);
    let scrape = orch_e2e::parse_prometheus(&http_get(&address, "/metrics").expect("GET").1);
    let lies = scrape
        .get("liar_lies_total{module=\"fixture-liar\"}")
        .copied()
        .unwrap_or(0.0);
    assert!((1.0..=40.0).contains(&lies), "took {lies} of 500 frames");
    assert!(!scrape.keys().any(|k| k.starts_with("orch_forged")));
    // A frame that claims more samples than a module may have: a protocol error.
    let crash = orch
        .wait_for("[CRASH] module 'forger' (isolated)", SHORT)
        .unwrap();
    assert!(
        crash.text.contains("more metrics than a module may have"),
        "{}",
        crash.text
    );
    // Stopped once it stays down: a signal landing while it restarts could
    // find it dying inside its `shutdown` call, a failure that exits with 3.
    orch.wait_for("[FAILED] module 'forger' stays down", SHORT)
        .unwrap();
    stop_cleanly(&mut orch);
}

/// An installed `cargo-orch` (not in a cargo target folder) with no
/// orch-networked beside it: a configuration that needs the network parts
/// is refused with the command that installs them, and nothing starts.
#[test]
fn an_installed_cargo_orch_without_its_network_program_says_how_to_install_it() {
    let scenario = Scenario::with_main(&format!("modules:\n{PRODUCER}"), "metrics:\n  listen: 0\n");
    let installed = tempfile::tempdir().expect("temporary folder");
    let program = installed.path().join("cargo-orch");
    std::fs::copy(orch_bin(), &program).expect("copy cargo-orch");
    let command = scenario.command(&["run", "--no-build"]);
    let output = Command::new(&program)
        .args(command.get_args())
        .current_dir(command.get_current_dir().expect("a folder"))
        .envs(command.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))))
        .output()
        .expect("run the copy");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("main.yaml has metrics")
            && stderr.contains("cargo install --path orch-core/networked"),
        "{stderr}"
    );
    assert!(!stderr.contains("app.started"), "{stderr}");
}
