//! Running every test binary of a suite on a fixed number of workers (one
//! per core by default), in either mode: [`Mode::PerTest`] lists every
//! binary, then runs every test in a process of its own; [`Mode::Fast`] runs
//! each binary once. The entries come back per binary, in job order, each
//! binary's sorted by name.

use super::fast;
use super::model::TestCase;
use super::per_test::{self, Listing};
use super::runner::{BinaryJob, Env, parallel};

/// How test binaries run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Each test in a process of its own (cargo-nextest's model): a crash
    /// fails one test, named; every test has its own time and timeout.
    #[default]
    PerTest,
    /// Each binary in one process (`cargo test`'s model, `--fast`).
    Fast,
}

/// The entries of each job, in job order.
pub fn run_binaries(
    jobs: &[BinaryJob],
    mode: Mode,
    workers: usize,
    env: Env<'_>,
) -> Vec<Vec<TestCase>> {
    match mode {
        Mode::Fast => {
            env.progress.add(jobs.len());
            parallel(jobs, workers, |job| fast::run(job, env).0)
        }
        Mode::PerTest => per_test_runs(jobs, workers, env),
    }
}

fn per_test_runs(jobs: &[BinaryJob], workers: usize, env: Env<'_>) -> Vec<Vec<TestCase>> {
    let listings: Vec<Listing> = parallel(jobs, workers, |job| per_test::list(job, env));
    // Every test of every binary, in one queue: (job, name, ignored).
    let tests: Vec<(usize, String, bool)> = listings
        .iter()
        .enumerate()
        .flat_map(|(job, listing)| {
            listing
                .run
                .iter()
                .map(move |(name, ignored)| (job, name.clone(), *ignored))
        })
        .collect();
    env.progress.add(tests.len());
    let mut results = parallel(&tests, workers, |(job, name, ignored)| {
        per_test::run_test(&jobs[*job], name, *ignored, Vec::new(), env)
    })
    .into_iter();
    let mut per_job: Vec<Vec<TestCase>> = Vec::with_capacity(jobs.len());
    for listing in listings {
        let mut cases: Vec<TestCase> = results.by_ref().take(listing.run.len()).collect();
        cases.extend(listing.ignored);
        cases.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(whole) = listing.whole {
            cases.extend(whole);
        }
        per_job.push(cases);
    }
    per_job
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use orch_process::ProcessGroups;

    use super::*;
    use crate::progress::Progress;
    use crate::runner;

    /// A script that ignores its arguments as a binary: it knows no
    /// `--list`, so per test it is reported whole from its listing run; fast,
    /// it runs once.
    fn job(dir: &Path, name: &str, script: &str) -> BinaryJob {
        let path = dir.join(name);
        runner::write_script(&path, &format!("#!/bin/sh\n{script}\n"));
        BinaryJob {
            module: "mod-a".into(),
            binary: crate::compile::TestBinary {
                path,
                manifest_dir: dir.to_path_buf(),
                ..runner::fake_binary(false)
            },
            args: Vec::new(),
            timeout: Some(Duration::from_secs(30)),
            retries: 0,
        }
    }

    #[test]
    fn both_modes_keep_job_order() {
        let (children, progress) = (ProcessGroups::default(), Progress::silent());
        let env = Env {
            children: &children,
            progress: &progress,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let jobs = [
            job(
                dir.path(),
                "a",
                "printf 'running 1 test\\ntest first ... ok\\n'",
            ),
            job(dir.path(), "b", "exit 3"),
            job(
                dir.path(),
                "c",
                "printf 'running 1 test\\ntest third ... ok\\n'",
            ),
        ];
        let fast = run_binaries(&jobs, Mode::Fast, 3, env);
        let names = |runs: &[Vec<TestCase>]| -> Vec<Vec<(String, String)>> {
            runs.iter()
                .map(|cases| {
                    cases
                        .iter()
                        .map(|c| (c.name.clone(), c.status().as_str().to_owned()))
                        .collect()
                })
                .collect()
        };
        let pair = |n: &str, s: &str| (n.to_owned(), s.to_owned());
        assert_eq!(
            names(&fast),
            [
                vec![pair("api::first", "passed")],
                vec![pair("api (test binary)", "failed")],
                vec![pair("api::third", "passed")]
            ]
        );
        let per_test = run_binaries(&jobs, Mode::PerTest, 2, env);
        assert_eq!(
            names(&per_test),
            names(&fast),
            "not listings: each reported whole"
        );
    }
}
