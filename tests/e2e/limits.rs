//! `limits:` end to end, with real isolated modules: a child past its
//! `memory_max` or `max_processes`, one that publishes past its
//! `publish_rate`, and the environment a child host gets.

use std::time::Duration;

use nix::sys::signal::Signal;
use orch_e2e::{OrchProcess, Scenario, env_marker, mark, module_hosts, wait_until};

/// Generous: the first run of a test may compile the modules.
const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(15);

const PRODUCER: &str = "  - name: mod-dummy-producer\n    config:\n      publish_interval: 50ms\n";

fn start(scenario: &Scenario, marker: &str) -> OrchProcess {
    let mut command = scenario.command(&["run"]);
    mark(&mut command, marker);
    command.env("ORCH_E2E_SECRET_FREE", "kept");
    command.env("E2E_DATABASE_PASSWORD", "not-for-children");
    OrchProcess::spawn(command).expect("spawn cargo-orch")
}

fn stop_cleanly(orch: &mut OrchProcess) {
    orch.signal(Signal::SIGINT).expect("SIGINT");
    let status = orch.wait_exit(Duration::from_secs(30)).expect("exit");
    assert_eq!(status.code(), Some(0), "clean exit\n{}", orch.output());
}

#[test]
fn a_child_past_its_memory_max_aborts_and_the_crash_names_the_limit() {
    let marker = env_marker("limits-memory");
    let scenario = Scenario::new(&format!(
        "modules:\n{PRODUCER}  - name: fixture-crash\n    isolation: process\n    \
         restart: never\n    limits: {{memory_max: 64MiB}}\n    config:\n      fault: allocate\n"
    ));
    let mut orch = start(&scenario, &marker);
    let crash = orch
        .wait_for("[CRASH] module 'fixture-crash' (isolated)", BUILD)
        .unwrap();
    assert!(
        crash
            .text
            .contains("killed by SIGABRT (abort): memory allocation of 1073741824 bytes failed")
            && crash.text.contains("its `limits.memory_max` is 64 MiB"),
        "{}",
        crash.text
    );
    assert!(orch.lines_with("allocated 1073741824 bytes").is_empty());
    stop_cleanly(&mut orch);
}

#[test]
fn a_child_that_runs_more_processes_than_max_processes_is_killed_with_them() {
    let marker = env_marker("limits-processes");
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-helper\n    isolation: process\n    restart: never\n    \
         limits: {max_processes: 2}\n    config:\n      helpers: 3\n",
    );
    let mut orch = start(&scenario, &marker);
    let crash = orch
        .wait_for("[CRASH] module 'fixture-helper' (isolated)", BUILD)
        .unwrap();
    assert!(
        crash
            .text
            .contains("ran 4 processes, more than its `limits.max_processes: 2`"),
        "{}",
        crash.text
    );
    wait_until("no helper survives", SHORT, || {
        orch_e2e::processes_with_env(&marker)
            .into_iter()
            .all(|pid| pid == orch.pid())
    });
    stop_cleanly(&mut orch);
}

#[test]
fn publishes_past_the_publish_rate_are_refused_and_counted() {
    let marker = env_marker("limits-rate");
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-slow-consumer\n    config:\n      delay_ms: 0\n  \
         - name: fixture-flood\n    isolation: process\n    limits: {publish_rate: 500}\n",
    );
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "module 'fixture-flood' (isolated) sends more publishes and requests than its \
         `limits.publish_rate: 500` a second",
        BUILD,
    )
    .unwrap();
    let summary = orch
        .wait_for(
            "publishes and requests refused in the last second, more than",
            SHORT,
        )
        .unwrap();
    let refused: u64 = summary
        .text
        .split("(isolated): ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", summary.text));
    assert!(
        refused > 500,
        "a flood is refused in thousands: {}",
        summary.text
    );
    // The consumer gets the admitted rate: about 500 a second, never the
    // flood. Its count line comes once a second at most: the span is the
    // time between the two lines read (a busy machine stretches it).
    let got = |orch: &OrchProcess| {
        let line = orch.last_line_with("SLOW got=").expect("a count line");
        let count: u64 = line
            .text
            .rsplit("got=")
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}", line.text));
        (count, line.at)
    };
    orch.collect_for(Duration::from_secs(1));
    let (before, since) = got(&orch);
    orch.collect_for(Duration::from_secs(3));
    let (after, until) = got(&orch);
    let during = after - before;
    let seconds = until.duration_since(since).as_secs_f64();
    // One window's worth more than the rate: the limiter's one-second
    // window admits a full second's at its edge.
    assert!(
        during >= 1 && (during as f64) <= 500.0 * (seconds + 1.0) + 100.0,
        "{during} events in {seconds:.1} s at 500/s"
    );
    stop_cleanly(&mut orch);
}

#[test]
fn a_child_host_gets_a_minimal_environment() {
    let marker = env_marker("limits-env");
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-event-log\n  - name: fixture-helper\n    isolation: process\n",
    );
    let mut orch = start(&scenario, &marker);
    orch.wait_for("helper started ", BUILD).unwrap();
    let hosts = module_hosts(&marker, "fixture-helper");
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let environ = std::fs::read(format!("/proc/{}/environ", hosts[0])).expect("environ");
    let keys: Vec<String> = environ
        .split(|b| *b == 0)
        .filter_map(|var| var.split(|b| *b == b'=').next())
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .filter(|key| !key.is_empty())
        .collect();
    assert!(keys.iter().any(|k| k == "PATH"), "{keys:?}");
    assert!(keys.iter().any(|k| k == "ORCH_E2E_SECRET_FREE"), "{keys:?}");
    assert!(
        !keys.iter().any(|k| k == "E2E_DATABASE_PASSWORD"),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.starts_with("CARGO")), "{keys:?}");
    // Its allocator commits memory as it uses it (limits.memory_max).
    assert!(
        keys.iter().any(|k| k == "MIMALLOC_ARENA_EAGER_COMMIT"),
        "{keys:?}"
    );
    stop_cleanly(&mut orch);
}

#[test]
fn subscription_churn_past_the_subscribe_rate_is_refused() {
    let marker = env_marker("limits-churn");
    let scenario = Scenario::new(
        "modules:\n  - name: fixture-flood\n    isolation: process\n    \
         limits: {subscribe_rate: 100, publish_rate: 10}\n    config:\n      churn: 5000\n",
    );
    let mut orch = start(&scenario, &marker);
    orch.wait_for(
        "module 'fixture-flood' (isolated) sends more subscribe and unsubscribe calls than \
         its `limits.subscribe_rate: 100` a second",
        BUILD,
    )
    .unwrap();
    orch.wait_for("[fixture-flood] CHURN done", SHORT).unwrap();
    stop_cleanly(&mut orch);
}
