//! Scenario outcomes and the files a run leaves behind: `report.json`, `junit.xml` and the terminal
//! summary table.
//!
//! `report.json` holds one entry per scenario × subject × backend; its shape is stable
//! (`id`, `name`, `subject`, `backend`, `outcome`, `duration_ms`, `message`). On the local
//! runtime it also says how containers were isolated (`isolation`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report as JunitReport, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

/// Errors writing reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The report directory or a report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// JUnit serialisation failed.
    #[error("cannot serialise junit.xml: {0}")]
    Junit(#[source] quick_junit::SerializeError),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How one scenario run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// An assertion failed or the scenario could not complete.
    Failed,
    /// Not run (for example, the subject does not declare what the scenario needs).
    Skipped,
}

impl Outcome {
    /// The lower-case word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One scenario × subject × backend result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// Catalog ID, e.g. `INIT-1`.
    pub id: String,
    /// Catalog short name, e.g. `restore-empty`.
    pub name: String,
    /// Subject name.
    pub subject: String,
    /// Backend (`s3` or `git`).
    pub backend: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall time of the scenario.
    pub duration_ms: u64,
    /// Failure or skip reason; empty when passed.
    pub message: String,
}

/// The whole run as written to `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Catalog version the run checked against.
    pub catalog: String,
    /// Runtime name (`local`, `kind`, …).
    pub runtime: String,
    /// How the local runtime isolated containers: `sandbox`, or how it fell short of a cluster
    /// (no root, no sandboxes) — a lower fidelity than the outcomes alone show. Absent on a
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Wall time of the whole run.
    pub wall_ms: u64,
    /// One entry per scenario × subject × backend.
    pub scenarios: Vec<ScenarioResult>,
}

impl RunReport {
    /// Count of results with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.scenarios
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    }

    /// True when nothing failed.
    pub fn all_passed(&self) -> bool {
        self.count(Outcome::Failed) == 0
    }

    /// Writes `report.json` and `junit.xml` into `dir` (created if missing); returns their paths.
    pub fn write(&self, dir: &Path) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
        let json_path = dir.join("report.json");
        let json = serde_json::to_string_pretty(self).expect("report serialises");
        write_file(&json_path, json.as_bytes())?;
        let junit_path = dir.join("junit.xml");
        let xml = self.to_junit().to_string().map_err(Error::Junit)?;
        write_file(&junit_path, xml.as_bytes())?;
        Ok((json_path, junit_path))
    }

    /// The JUnit form: one suite per subject/backend pair, one case per scenario.
    pub fn to_junit(&self) -> JunitReport {
        let mut report = JunitReport::new("phasecheck");
        report.set_time(Duration::from_millis(self.wall_ms));
        let mut suites: Vec<(String, TestSuite)> = Vec::new();
        for result in &self.scenarios {
            let suite_name = format!("{}/{}", result.subject, result.backend);
            if !suites.iter().any(|(name, _)| *name == suite_name) {
                suites.push((suite_name.clone(), TestSuite::new(suite_name.clone())));
            }
            let (_, suite) = suites
                .iter_mut()
                .find(|(name, _)| *name == suite_name)
                .expect("suite just added");
            let mut status = match result.outcome {
                Outcome::Passed => TestCaseStatus::success(),
                Outcome::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
                Outcome::Skipped => TestCaseStatus::skipped(),
            };
            if !result.message.is_empty() {
                status.set_message(result.message.clone());
            }
            let mut case = TestCase::new(format!("{} {}", result.id, result.name), status);
            case.set_classname(suite_name.clone());
            case.set_time(Duration::from_millis(result.duration_ms));
            suite.add_test_case(case);
        }
        report.add_test_suites(suites.into_iter().map(|(_, suite)| suite));
        report
    }

    /// The terminal summary: one row per result, then the totals and the wall time.
    pub fn summary_table(&self) -> String {
        let mut out = String::new();
        let width = |f: &dyn Fn(&ScenarioResult) -> usize, min: usize| {
            self.scenarios.iter().map(f).max().unwrap_or(0).max(min)
        };
        let w_id = width(&|r| r.id.len() + 1 + r.name.len(), 8);
        let w_subject = width(&|r| r.subject.len(), 7);
        let _ = writeln!(
            out,
            "{:<w_id$}  {:<w_subject$}  {:<7}  {:<7}  {:>8}  message",
            "scenario", "subject", "backend", "outcome", "time"
        );
        for r in &self.scenarios {
            let first_line = r.message.lines().next().unwrap_or("");
            let _ = writeln!(
                out,
                "{:<w_id$}  {:<w_subject$}  {:<7}  {:<7}  {:>7.1}s  {}",
                format!("{} {}", r.id, r.name),
                r.subject,
                r.backend,
                r.outcome.as_str(),
                r.duration_ms as f64 / 1000.0,
                first_line
            );
        }
        if let Some(note) = self.isolation.as_deref().filter(|n| *n != "sandbox") {
            let _ = writeln!(out, "LOWER FIDELITY: the local runtime ran with {note}");
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed, {} skipped in {:.1}s wall time",
            self.count(Outcome::Passed),
            self.count(Outcome::Failed),
            self.count(Outcome::Skipped),
            self.wall_ms as f64 / 1000.0
        );
        out
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunReport {
        RunReport {
            catalog: "v1".into(),
            runtime: "local".into(),
            isolation: Some("sandbox".into()),
            wall_ms: 1234,
            scenarios: vec![
                ScenarioResult {
                    id: "INIT-1".into(),
                    name: "restore-empty".into(),
                    subject: "phasepod".into(),
                    backend: "s3".into(),
                    outcome: Outcome::Passed,
                    duration_ms: 800,
                    message: String::new(),
                },
                ScenarioResult {
                    id: "MNT-4".into(),
                    name: "retention".into(),
                    subject: "phasepod".into(),
                    backend: "git".into(),
                    outcome: Outcome::Failed,
                    duration_ms: 900,
                    message: "5 backups kept, KEEP=2\nmore".into(),
                },
            ],
        }
    }

    #[test]
    fn report_json_has_one_entry_per_result_with_the_documented_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (json, junit) = sample().write(dir.path()).unwrap();
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        let entries = value["scenarios"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        for key in [
            "id",
            "name",
            "subject",
            "backend",
            "outcome",
            "duration_ms",
            "message",
        ] {
            assert!(entries[1].get(key).is_some(), "missing {key}");
        }
        assert_eq!(entries[1]["outcome"], "failed");
        assert_eq!(value["isolation"], "sandbox");
        let xml = std::fs::read_to_string(junit).unwrap();
        assert!(xml.contains("MNT-4 retention"), "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
    }

    #[test]
    fn summary_ends_with_totals_and_wall_time() {
        let table = sample().summary_table();
        assert!(table.ends_with("1 passed, 1 failed, 0 skipped in 1.2s wall time\n"));
        assert!(table.contains("5 backups kept, KEEP=2"));
        assert!(!table.contains("more"));
        assert!(!table.contains("LOWER FIDELITY"));
    }

    #[test]
    fn a_run_with_less_isolation_than_a_cluster_says_so_in_the_summary_and_the_json() {
        let mut report = sample();
        report.isolation = Some("no sandboxes (user namespaces disabled): …".into());
        assert!(
            report
                .summary_table()
                .contains("LOWER FIDELITY: the local runtime ran with no sandboxes")
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(
            json["isolation"]
                .as_str()
                .unwrap()
                .starts_with("no sandboxes")
        );
    }
}
