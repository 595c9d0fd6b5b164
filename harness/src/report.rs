//! Scenario outcomes and the files a run leaves behind: `report.json`, `junit.xml` and the terminal
//! summary table.
//!
//! `report.json` holds one entry per scenario × subject × backend; its shape is stable
//! (`id`, `name`, `subject`, `backend`, `outcome`, `duration_ms`, `message`).

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
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The subject broke the requirement.
    Failed,
    /// The harness could not run the scenario (a store that did not start, a runtime that timed
    /// out): no verdict on the subject, but the run is not green.
    Error,
    /// Not run here, with the reason (a program missing, a runtime without native sidecars).
    Skipped,
    /// The subject does not promise the requirement; it ran, and `would_have_been` says how.
    NotClaimed,
    /// The subject has no such part (e.g. no retention knob for MNT-4), with the reason.
    NotApplicable,
}

impl Outcome {
    /// Every outcome, in the order summaries list them.
    pub const ALL: [Outcome; 6] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Error,
        Outcome::Skipped,
        Outcome::NotClaimed,
        Outcome::NotApplicable,
    ];

    /// The word used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::NotClaimed => "not-claimed",
            Outcome::NotApplicable => "not-applicable",
        }
    }

    /// Whether this outcome makes the run fail.
    pub fn fails_run(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Error)
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
    /// For [`Outcome::NotClaimed`]: how the scenario ended (its message is in `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_have_been: Option<Outcome>,
}

/// The whole run as written to `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Catalog version the run checked against.
    pub catalog: String,
    /// Runtime name (`local`, `kind`, …).
    pub runtime: String,
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

    /// True when nothing failed and no scenario ended in a harness error.
    pub fn all_passed(&self) -> bool {
        !self.scenarios.iter().any(|r| r.outcome.fails_run())
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
                Outcome::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
                Outcome::Skipped | Outcome::NotClaimed | Outcome::NotApplicable => {
                    TestCaseStatus::skipped()
                }
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
        let mut totals = format!(
            "{} passed, {} failed, {} skipped",
            self.count(Outcome::Passed),
            self.count(Outcome::Failed),
            self.count(Outcome::Skipped),
        );
        for outcome in [Outcome::Error, Outcome::NotClaimed, Outcome::NotApplicable] {
            let n = self.count(outcome);
            if n > 0 {
                let _ = write!(totals, ", {n} {}", outcome.as_str());
            }
        }
        let _ = writeln!(
            out,
            "{totals} in {:.1}s wall time",
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
                    would_have_been: None,
                },
                ScenarioResult {
                    id: "MNT-4".into(),
                    name: "retention".into(),
                    subject: "phasepod".into(),
                    backend: "git".into(),
                    outcome: Outcome::Failed,
                    duration_ms: 900,
                    message: "5 backups kept, KEEP=2\nmore".into(),
                    would_have_been: None,
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
        let xml = std::fs::read_to_string(junit).unwrap();
        assert!(xml.contains("MNT-4 retention"), "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
    }

    #[test]
    fn harness_errors_fail_the_run_and_unclaimed_or_inapplicable_ones_do_not() {
        let mut report = sample();
        report.scenarios.truncate(1);
        let mut extra = report.scenarios[0].clone();
        extra.outcome = Outcome::NotClaimed;
        extra.would_have_been = Some(Outcome::Failed);
        extra.message = "the app served 3 files".into();
        report.scenarios.push(extra.clone());
        extra.outcome = Outcome::NotApplicable;
        extra.would_have_been = None;
        report.scenarios.push(extra.clone());
        assert!(report.all_passed());
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["scenarios"][1]["outcome"], "not-claimed");
        assert_eq!(json["scenarios"][1]["would_have_been"], "failed");
        assert!(json["scenarios"][0].get("would_have_been").is_none());
        assert!(
            report
                .summary_table()
                .contains("1 passed, 0 failed, 0 skipped, 1 not-claimed, 1 not-applicable in")
        );

        extra.outcome = Outcome::Error;
        extra.message = "starting the backup store: address in use".into();
        report.scenarios.push(extra);
        assert!(!report.all_passed());
        let xml = report.to_junit().to_string().unwrap();
        assert!(xml.contains("<error"), "{xml}");
        assert!(xml.contains("<skipped"), "{xml}");
    }

    #[test]
    fn summary_ends_with_totals_and_wall_time() {
        let table = sample().summary_table();
        assert!(table.ends_with("1 passed, 1 failed, 0 skipped in 1.2s wall time\n"));
        assert!(table.contains("5 backups kept, KEEP=2"));
        assert!(!table.contains("more"));
    }
}
