//! Tests of the process driver.

use super::*;

fn sh(script: &str) -> WatchedChild {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script]);
    WatchedChild::spawn(cmd).expect("spawn sh")
}

#[test]
fn strips_escape_sequences() {
    assert_eq!(
        strip_ansi("\x1b[2m2024\x1b[0m \x1b[32m INFO\x1b[0m hi"),
        ("2024  INFO hi".to_owned(), true)
    );
    assert_eq!(
        strip_ansi("\x1b]8;;http://x\x1b\\link\x1b]8;;\x07!"),
        ("link!".to_owned(), true)
    );
    assert_eq!(strip_ansi("plain"), ("plain".to_owned(), false));
}

#[test]
fn waits_for_lines_from_both_streams_and_keeps_them() {
    let mut child = sh("echo one; sleep 0.2; echo two >&2; sleep 0.3; echo three");
    let deadline = Instant::now() + Duration::from_secs(10);
    let two = child.wait_for("two", deadline).expect("two");
    assert_eq!(two.stream, Stream::Stderr);
    // A line seen earlier is found again, at once, though no new line comes.
    let asked = Instant::now();
    let one = child.wait_for("one", deadline).expect("one");
    assert!(one.index < two.index);
    assert!(asked.elapsed() < Duration::from_millis(100));
    let status = child.wait_exit(deadline).expect("exit");
    assert!(status.success());
    // Order is kept within a stream; across streams it is only as good as the
    // reader threads' wake-ups.
    let texts = |stream| -> Vec<&str> {
        child
            .lines()
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect()
    };
    assert_eq!(texts(Stream::Stdout), ["one", "three"]);
    assert_eq!(texts(Stream::Stderr), ["two"]);
}

#[test]
fn reports_timeouts_late_lines_and_ended_output() {
    let mut child = sh("sleep 0.3; echo late; sleep 30");
    let err = child
        .wait_for("late", Instant::now() + Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, WaitError::TimedOut { .. }), "{err}");
    let deadline = Instant::now();
    child
        .wait_for("late", Instant::now() + Duration::from_secs(10))
        .expect("eventually");
    let err = child.wait_for("late", deadline).unwrap_err();
    assert!(matches!(err, WaitError::Late { .. }), "{err}");
    child.send_signal(Signal::SIGTERM).expect("signal");
    let status = child
        .wait_exit(Instant::now() + Duration::from_secs(10))
        .expect("exit");
    assert!(!status.success());
    let err = child
        .wait_for("never", Instant::now() + Duration::from_secs(10))
        .unwrap_err();
    assert!(matches!(err, WaitError::Ended { .. }), "{err}");
    assert!(child.send_signal(Signal::SIGTERM).is_err());
}

#[test]
fn kills_a_running_child_on_drop() {
    let child = sh("sleep 30");
    let pid = child.pid();
    drop(child);
    // The child was killed and reaped: the pid no longer exists.
    assert!(kill(pid, None).is_err());
}
