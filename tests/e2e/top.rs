//! `cargo orch top` end to end: in a real terminal (tmux, provisioned as
//! the other Debian tools of the tests), its screen captured: a row for
//! every module; the window resized: every line within the new width and
//! every row still there; `q` leaves. With stdout not a terminal it prints
//! a plain table.

use std::process::Output;
use std::time::{Duration, Instant};

use orch_e2e::debian::Tool;
use orch_e2e::{OrchProcess, Scenario, orch_bin, workspace_root};

const BUILD: Duration = Duration::from_secs(240);
const MODULES: &str = "modules:\n  - name: mod-test-module\n  - name: mod-dummy-producer\n    \
                       config:\n      publish_interval: 100ms\n  - name: mod-dummy-consumer\n";
const NAMES: [&str; 3] = [
    "mod-test-module",
    "mod-dummy-producer",
    "mod-dummy-consumer",
];

/// A tmux server of this test's own, killed when dropped.
struct Tmux {
    tool: Tool,
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec!["-L", self.socket.as_str(), "-f", "/dev/null"];
        all.extend_from_slice(args);
        self.tool.command(&all).output().expect("tmux runs")
    }

    /// The pane's lines now.
    fn screen(&self) -> Vec<String> {
        let output = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits (at most 20 s) until the screen satisfies `ok`; the last one.
    fn wait_screen(&self, what: &str, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "{what}; the screen:\n{}",
                screen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Every module has a row (its name, then its state).
fn every_row(screen: &[String]) -> bool {
    NAMES.iter().all(|name| {
        screen
            .iter()
            .any(|line| line.starts_with(name) && line.contains("running"))
    })
}

#[test]
fn top_shows_every_module_resizes_and_leaves_on_q() {
    let tool = match orch_e2e::debian::tool("tmux", &["-V"]) {
        Ok(tool) => tool,
        Err(e) => {
            eprintln!("SKIPPED: no tmux to run top in: {e:#}");
            return;
        }
    };
    let scenario = Scenario::new(MODULES);
    let mut run = OrchProcess::spawn(scenario.command(&["run"])).expect("spawn");
    run.wait_for("app.started", BUILD)
        .expect("the orchestrator starts");
    let pid = run.pid().to_string();

    // Not a terminal: a plain table, no escape codes.
    let output = scenario
        .command(&["top", "--once", "--pid", &pid])
        .output()
        .expect("cargo orch top --once");
    let plain = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{plain}");
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(
        plain.contains("MODULE") && NAMES.iter().all(|n| plain.contains(n)),
        "{plain}"
    );

    let tmux = Tmux {
        tool,
        socket: format!("orch-top-{}", std::process::id()),
    };
    let command = format!(
        "{} orch top --pid {pid} --config-dir {}",
        orch_bin().display(),
        scenario.config_dir().display()
    );
    let root = workspace_root().display().to_string();
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "120",
        "-y",
        "30",
        "-c",
        &root,
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let screen = tmux.wait_screen("a row for every module", every_row);
    assert!(
        screen
            .iter()
            .any(|l| l.starts_with("MODULE") && l.contains("P99")),
        "{}",
        screen.join("\n")
    );
    // The producer's 10 pings a second show as events out.
    tmux.wait_screen("the producer's rate", |screen| {
        screen.iter().any(|line| {
            line.starts_with("mod-dummy-producer")
                && line
                    .split_whitespace()
                    .nth(3)
                    .and_then(|out| out.parse::<f64>().ok())
                    .is_some_and(|rate| rate >= 5.0)
        })
    });

    let resized = tmux.run(&["resize-window", "-t", "top", "-x", "70", "-y", "12"]);
    assert!(resized.status.success(), "{resized:?}");
    // Top itself cut its lines to the new width (its `…`), not the terminal.
    let screen = tmux.wait_screen("the table redrawn at 70 columns", |screen| {
        every_row(screen)
            && screen.iter().all(|l| l.chars().count() <= 70)
            && screen
                .iter()
                .any(|l| l.starts_with("MODULE") && l.ends_with('…'))
    });
    assert!(screen.len() <= 12, "{}", screen.join("\n"));

    let quit = tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(quit.status.success(), "{quit:?}");
    let until = Instant::now() + Duration::from_secs(10);
    while tmux.run(&["has-session", "-t", "top"]).status.success() {
        assert!(Instant::now() < until, "top did not leave on q");
        std::thread::sleep(Duration::from_millis(200));
    }
    run.stop_cleanly();
}
