//! Typed topics end to end: a producer and an isolated consumer that both
//! type `typed.reading` (orch-typed, schemars). A reload of the producer
//! that renames a field the consumer needs is refused in phase `types`,
//! naming both modules, the topic and the field, and the old producer runs
//! on; one that adds an optional field is taken. `cargo orch check`
//! reports the same conflict without running anything, `graph` names the
//! types on its edges and marks the conflict, and `tap --validate` checks
//! each event against its publisher's type.

use std::time::Duration;

use orch_e2e::{OrchProcess, ScratchWorkspace, wait_until};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(30);
const PRODUCER: &str = "tests/fixtures/fixture-typed-producer/src/lib.rs";
const MODULES: &str = "modules:\n  - name: fixture-event-log\n  - name: fixture-typed-producer\n  - name: fixture-typed-consumer\n    \
                       isolation: process\n";

/// Renames the producer's `celsius` to `kelvin` (struct and value).
fn rename_field(scratch: &ScratchWorkspace) {
    scratch
        .replace(PRODUCER, "pub celsius: f64,", "pub kelvin: f64,")
        .expect("edit the field");
    scratch
        .replace(PRODUCER, "celsius: 20.5,", "kelvin: 293.65,")
        .expect("edit the value");
}

/// stdout and stderr of `cargo orch ARGS` in the copy, which must succeed.
fn said_by(scratch: &ScratchWorkspace, args: &[&str]) -> (String, String) {
    let output = scratch.orch(args).output().expect("cargo orch");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "cargo orch {args:?}:\n{out}{err}");
    (out, err)
}

/// Waits until the consumer has logged three more readings.
fn readings_go_on(orch: &mut OrchProcess, what: &str) {
    let seen = orch.lines_with("[fixture-typed-consumer] reading").len();
    wait_until(what, SHORT, || {
        orch.collect_for(Duration::from_millis(200));
        orch.lines_with("[fixture-typed-consumer] reading").len() >= seen + 3
    });
}

#[test]
fn a_reload_that_breaks_a_subscriber_is_refused_and_an_added_optional_field_is_not() {
    let scratch = ScratchWorkspace::copy_of_repo().expect("copy the workspace");
    scratch
        .write("config/modules.yaml", MODULES)
        .expect("write modules.yaml");
    let mut orch = OrchProcess::spawn(scratch.orch(&["run"])).expect("spawn");
    orch.wait_for("app.started", BUILD).expect("it starts");
    orch.wait_for("[fixture-typed-consumer] reading 3 at 20.5 C", SHORT)
        .expect("the consumer reads the typed readings");
    // The graph names the payload type on the edge (read from the built
    // libraries, and from the running orchestrator with --live).
    let dot = said_by(&scratch, &["graph"]).0;
    assert!(dot.contains("label=\"typed.reading: Reading\""), "{dot}");
    let live = said_by(&scratch, &["graph", "--live"]).0;
    assert!(live.contains("typed.reading: Reading ("), "{live}");
    // tap --validate: every reading fits its declared type.
    let (tapped, _) = said_by(
        &scratch,
        &["tap", "typed.reading", "--validate", "--count", "3"],
    );
    assert_eq!(
        tapped
            .lines()
            .filter(|l| l.ends_with("<fits Reading>"))
            .count(),
        3,
        "{tapped}"
    );

    // 1. A field the consumer needs is renamed: refused, named, old code on.
    rename_field(&scratch);
    let output = scratch
        .orch(&["reload", "fixture-typed-producer"])
        .output()
        .expect("cargo orch reload");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "the reload is refused:\n{said}");
    for wanted in [
        "phase types",
        "'fixture-typed-producer' publishes typed.reading",
        "'fixture-typed-consumer'",
        "field `celsius`",
        "does not send it",
    ] {
        assert!(said.contains(wanted), "{wanted:?} is not named:\n{said}");
    }
    let failed = orch
        .wait_for("EVENT module.reload_failed", SHORT)
        .expect("module.reload_failed is published");
    assert!(
        failed.text.contains("\"phase\":\"types\"") && failed.text.contains("celsius"),
        "{}",
        failed.text
    );
    readings_go_on(
        &mut orch,
        "the old producer runs on and the consumer reads it",
    );
    assert!(
        orch.lines_with("failed in phase on_event").is_empty(),
        "no reading failed to parse:\n{}",
        orch.output()
    );

    // `cargo orch check` finds the same conflict from the built libraries.
    let check = scratch.orch(&["check"]).output().expect("cargo orch check");
    let checked = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        !check.status.success() && checked.contains("field `celsius`"),
        "check reports the conflict:\n{checked}"
    );
    // So does the graph: the edge in red, the conflict in a note.
    let (dot, notes) = said_by(&scratch, &["graph"]);
    assert!(dot.contains("color=red"), "{dot}");
    assert!(
        notes.contains("type conflict") && notes.contains("celsius"),
        "{notes}"
    );

    // 2. Back to celsius, plus an optional field: taken.
    scratch
        .replace(
            PRODUCER,
            "pub kelvin: f64,",
            "pub celsius: f64,\n    /// New.\n    pub note: Option<String>,",
        )
        .expect("edit");
    scratch
        .replace(
            PRODUCER,
            "kelvin: 293.65,",
            "celsius: 20.5,\n            note: None,",
        )
        .expect("edit");
    let output = scratch
        .orch(&["reload", "fixture-typed-producer"])
        .output()
        .expect("cargo orch reload");
    assert!(
        output.status.success(),
        "an added optional field is taken:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    orch.wait_for("EVENT module.reloaded", SHORT)
        .expect("module.reloaded");
    readings_go_on(&mut orch, "the consumer reads the new producer's readings");

    // 3. A producer that declares Reading but sends less (its types are
    //    unchanged, so the reload is taken): tap --validate names the field.
    scratch
        .replace(
            PRODUCER,
            "ctx.publish(\"typed.reading\", &reading)?;",
            "ctx.publish(\"typed.reading\", &serde_json::json!({\"seq\": reading.seq}))?;",
        )
        .expect("edit");
    let output = scratch
        .orch(&["reload", "fixture-typed-producer"])
        .output()
        .expect("cargo orch reload");
    assert!(output.status.success(), "{output:?}");
    let (tapped, _) = said_by(
        &scratch,
        &["tap", "typed.reading", "--validate", "--count", "2"],
    );
    assert!(
        tapped
            .lines()
            .filter(|l| l.contains("<DOES NOT FIT Reading: ")
                && l.contains("`celsius` is required but missing"))
            .count()
            == 2,
        "{tapped}"
    );

    orch.signal(nix::sys::signal::Signal::SIGINT)
        .expect("SIGINT");
    let status = orch.wait_exit(SHORT).expect("it stops");
    assert_eq!(status.code(), Some(0), "{}", orch.output());
}

/// A types symbol written by hand to misbehave: each way is named by
/// `cargo orch check` (phase types) and none holds it up or leaks into the
/// document; a library that prints on stdout or leaves a helper behind is
/// still read.
#[test]
fn a_hostile_types_symbol_is_contained_and_named() {
    let scenario = orch_e2e::Scenario::with_main(
        "modules:\n  - name: fixture-typed-hostile\n",
        "timeouts:\n  load: 2s\n",
    );
    let check = |mode: &str| {
        let output = scenario
            .command(&["check"])
            .env("ORCH_TYPED_HOSTILE", mode)
            .output()
            .expect("cargo orch check");
        (
            output.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    };
    for (mode, wanted) in [
        (
            "hang",
            "phase types: did not return within 2.00 s (timeout)",
        ),
        (
            "flood",
            "phase types: returned an error: its topic types are more than",
        ),
        (
            "crash",
            "phase types: returned an error: its topic types could not be read",
        ),
    ] {
        let (ok, said) = check(mode);
        assert!(
            !ok && said.contains(wanted),
            "{mode}: {wanted:?} not in:\n{said}"
        );
    }
    for mode in ["print", "helper", "good"] {
        let (ok, said) = check(mode);
        assert!(ok, "{mode}: the types are read:\n{said}");
    }
}
