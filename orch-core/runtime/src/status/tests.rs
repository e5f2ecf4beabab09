//! The board through a real bus: host events update the rows they name.

use std::sync::Arc;

use orch_config::Isolation;
use orch_sdk::events::{
    AppStarted, ModuleCrashed, ModuleError, ModuleFailed, ModuleReloadFailed, ModuleReloaded,
    ModuleRestarted, ModuleUnloaded,
};

use super::{ModuleState, StatusBoard};
use crate::bus::Bus;
use crate::mailbox::{Mailbox, NoCall};

fn board_on_bus() -> (StatusBoard, Bus) {
    let bus = Bus::new();
    let board = StatusBoard::new();
    let id = bus.register(board.sink());
    for pattern in StatusBoard::followed_topics() {
        bus.subscribe(id, pattern).expect("valid pattern");
    }
    (board, bus)
}

fn row(board: &StatusBoard, name: &str) -> super::ModuleStatus {
    board
        .snapshot()
        .into_iter()
        .find(|m| m.name == name)
        .expect("the module has a row")
}

#[test]
fn a_crash_then_a_restart_then_giving_up() {
    let (board, bus) = board_on_bus();
    let counters = board.starting(
        "worker",
        Isolation::Process,
        Mailbox::<NoCall>::with_defaults("worker").gauge(),
    );
    counters.set_pid(4321);
    board.running("worker", 1);
    assert_eq!(row(&board, "worker").pid, Some(4321));
    bus.publish_system(&ModuleCrashed {
        name: "worker".into(),
        reason: "killed by signal 9 (SIGKILL)".into(),
        generation: 1,
    });
    let crashed = row(&board, "worker");
    assert_eq!(crashed.state, ModuleState::Restarting);
    assert_eq!(crashed.crashes, 1);
    assert_eq!(crashed.pid, None);
    let error = crashed.last_error.expect("the crash is the last error");
    assert_eq!(error.phase, "crash");
    assert!(error.message.contains("SIGKILL"), "{}", error.message);
    bus.publish_system(&ModuleRestarted {
        name: "worker".into(),
        restarts: 1,
    });
    assert_eq!(row(&board, "worker").state, ModuleState::Running);
    assert_eq!(row(&board, "worker").restarts, 1);
    bus.publish_system(&ModuleFailed {
        name: "worker".into(),
        reason: "exit code 1".into(),
        restarts: 5,
    });
    assert_eq!(row(&board, "worker").state, ModuleState::Failed);
}

#[test]
fn reloads_count_and_a_failed_one_keeps_it_running() {
    let (board, bus) = board_on_bus();
    board.starting(
        "ticker",
        Isolation::InProcess,
        Mailbox::<NoCall>::with_defaults("ticker").gauge(),
    );
    board.running("ticker", 1);
    board.set_state("ticker", ModuleState::Reloading);
    bus.publish_system(&ModuleReloadFailed {
        name: "ticker".into(),
        phase: "build".into(),
        error: "expected `;`".into(),
        hint: "fix it".into(),
    });
    let failed = row(&board, "ticker");
    assert_eq!(failed.state, ModuleState::Running);
    assert_eq!(failed.reload_failures, 1);
    assert_eq!(failed.last_error.map(|e| e.phase), Some("build".into()));
    bus.publish_system(&ModuleReloaded {
        name: "ticker".into(),
        generation: 2,
        build_ms: 250.0,
        swap_ms: 3.0,
    });
    let reloaded = row(&board, "ticker");
    assert_eq!((reloaded.generation, reloaded.reloads), (2, 1));
    board.for_each_module(|status, _, times| {
        assert_eq!(status.name, "ticker");
        assert_eq!(times.build.snapshot().count, 1);
        assert_eq!(times.swap.snapshot().count, 1);
    });
}

#[test]
fn ready_once_started_and_none_failed() {
    let (board, bus) = board_on_bus();
    board.starting(
        "a",
        Isolation::InProcess,
        Mailbox::<NoCall>::with_defaults("a").gauge(),
    );
    assert!(!board.is_ready());
    bus.publish_system(&AppStarted {
        modules: vec!["a".into()],
        startup_ms: 1.0,
    });
    board.running("a", 1);
    assert!(board.is_ready());
    bus.publish_system(&ModuleError {
        name: "a".into(),
        phase: "start".into(),
        topic: None,
        error: "no database".into(),
        hint: None,
    });
    board.out("a", ModuleState::Failed, None);
    assert!(!board.is_ready());
    assert_eq!(
        row(&board, "a").last_error.map(|e| e.message),
        Some("no database".into())
    );
}

#[test]
fn an_operator_restart_stays_restarting_through_the_unload() {
    let (board, bus) = board_on_bus();
    let mailbox = Mailbox::<NoCall>::with_defaults("m");
    board.starting("m", Isolation::InProcess, mailbox.gauge());
    board.running("m", 1);
    board.set_state("m", ModuleState::Restarting);
    bus.publish_system(&ModuleUnloaded { name: "m".into() });
    assert_eq!(row(&board, "m").state, ModuleState::Restarting);
    let again = board.starting("m", Isolation::InProcess, mailbox.gauge());
    assert_eq!(row(&board, "m").state, ModuleState::Restarting);
    board.running("m", 2);
    assert!(Arc::strong_count(&again) >= 2, "the same counters are kept");
    assert_eq!(row(&board, "m").state, ModuleState::Running);
}
