//! `cargo orch record` and `replay` end to end: 1,000 pings of the shipped
//! producer recorded from one orchestrator, then replayed as fast as
//! possible into another that runs only the consumer: it gets every
//! recorded ping, in the recorded order, none missing; a file that is not a
//! recording is refused naming it.

use std::io::BufRead as _;
use std::path::Path;
use std::time::Duration;

use orch_e2e::{OrchProcess, Scenario, wait_until};

const BUILD: Duration = Duration::from_secs(240);
const SHORT: Duration = Duration::from_secs(30);
const EVENTS: u64 = 1_000;

/// The `seq` of every recorded event, in file order.
fn recorded_seqs(path: &Path) -> Vec<u64> {
    let file = std::fs::File::open(path).expect("the recording");
    let lines = std::io::BufReader::new(flate2::read::GzDecoder::new(file)).lines();
    let values: Vec<serde_json::Value> = lines
        .map(|line| serde_json::from_str(&line.expect("a line")).expect("JSON"))
        .collect();
    assert_eq!(values[0]["format"], "cargo-orch-recording", "{}", values[0]);
    assert_eq!(values[0]["version"], 1);
    let end = values.last().expect("lines");
    assert_eq!(end["end"], true, "the file is whole: {end}");
    assert_eq!(end["events"], EVENTS);
    values[1..values.len() - 1]
        .iter()
        .map(|v| {
            assert_eq!(v["topic"], "test.ping");
            v["payload"]["seq"].as_u64().expect("a ping's seq")
        })
        .collect()
}

#[test]
fn a_recording_of_a_thousand_pings_replays_in_order_with_none_missing() {
    let producer = Scenario::new(
        "modules:\n  - name: mod-dummy-producer\n    config:\n      publish_interval: 2ms\n",
    );
    let mut source = OrchProcess::spawn(producer.command(&["run"])).expect("spawn");
    source
        .wait_for("app.started", BUILD)
        .expect("the producer starts");
    let file = producer.config_dir().join("pings.orch");
    let pid = source.pid().to_string();
    let output = producer
        .command(&[
            "record",
            "test.>",
            "--count",
            &EVENTS.to_string(),
            "--out",
            file.to_str().expect("UTF-8"),
            "--pid",
            &pid,
        ])
        .output()
        .expect("cargo orch record");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(said.contains("1000 event(s) on 'test.>'"), "{said}");
    source.stop_cleanly();
    let recorded = recorded_seqs(&file);
    assert_eq!(recorded.len() as u64, EVENTS);

    // Every ping is logged: the log rate must let a fast replay's lines by.
    let consumer =
        Scenario::new("modules:\n  - name: mod-dummy-consumer\n    limits: {log_rate: 1000000}\n");
    let mut sink = OrchProcess::spawn(consumer.command(&["run"])).expect("spawn");
    sink.wait_for("app.started", BUILD)
        .expect("the consumer starts");
    let into = sink.pid().to_string();
    let output = consumer
        .command(&[
            "replay",
            file.to_str().expect("UTF-8"),
            "--as-fast-as-possible",
            "--into",
            &into,
        ])
        .output()
        .expect("cargo orch replay");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{said}");
    assert!(said.contains("published as 'replay'"), "{said}");
    wait_until("every replayed ping arrives", SHORT, || {
        sink.collect_for(Duration::from_millis(200));
        sink.pings_received("mod-dummy-consumer").len() as u64 >= EVENTS
    });
    assert_eq!(
        sink.pings_received("mod-dummy-consumer"),
        recorded,
        "the consumer got the recorded pings in order, none missing"
    );

    // Not a recording: refused, the file named.
    let bogus = consumer.config_dir().join("bogus.orch");
    std::fs::write(&bogus, "{\"format\":\"something else\"}\n").expect("write");
    let output = consumer
        .command(&["replay", bogus.to_str().expect("UTF-8"), "--into", &into])
        .output()
        .expect("cargo orch replay");
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{said}");
    assert!(
        said.contains("bogus.orch:1") && said.contains("hint:"),
        "{said}"
    );
    sink.stop_cleanly();
}
