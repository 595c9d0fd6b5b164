//! Scenario outcomes and the files a run leaves behind: `report.json`, `junit.xml`,
//! `report.html` ([`html`]), the terminal summary table, and on GitHub Actions the annotations
//! and job summary ([`github`]).
//!
//! `report.json` holds the run (`tool`, `version`, `catalog`, `runtime`, `started_at`, `wall_ms`,
//! `options`, `stopped`) and one entry per scenario × subject × backend × iteration; the entries'
//! shape is stable (`id`, `name`, `subject`, `backend`, `outcome`, `duration_ms`, `message`, plus
//! `iteration`, `started_at`, `namespace`, `artefacts`, `timeline` as text, and as data `pods`
//! and `events` ([`trace`])).
//!
//! Each [`Outcome`] is spelt out in one `match` per place: [`Outcome::as_str`],
//! [`Outcome::fails_run`], [`Outcome::colour`], [`Outcome::symbol`], [`Outcome::html_colour`] and
//! `junit_status`; a new outcome is added there and in [`Outcome::ALL`].
//! On the local runtime the run also says how containers were isolated (`isolation`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use quick_junit::{
    NonSuccessKind, Property, Report as JunitReport, TestCase, TestCaseStatus, TestSuite,
};
use serde::{Deserialize, Serialize};

pub mod github;
pub mod html;
pub mod matrix;
mod share;
pub mod trace;

pub use share::{HarnessShare, Phase};
pub use trace::{CaseEvent, EventKind, Part, PodTrace};

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
    /// The report directory exists and is not a directory.
    #[error("{path} is not a directory; name a directory (it is created if missing)")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// JUnit serialisation failed.
    #[error("cannot serialise junit.xml: {0}")]
    Junit(#[source] quick_junit::SerializeError),
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How one scenario run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Cancelled before it ended (a signal, `--fail-fast`), or never started for that reason.
    Interrupted,
}

impl Outcome {
    /// Every outcome, in the order summaries count them.
    pub const ALL: [Outcome; 7] = [
        Outcome::Passed,
        Outcome::Failed,
        Outcome::Skipped,
        Outcome::Error,
        Outcome::NotClaimed,
        Outcome::NotApplicable,
        Outcome::Interrupted,
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
            Outcome::Interrupted => "interrupted",
        }
    }

    /// Whether this outcome makes the run fail (exit code 1).
    pub fn fails_run(self) -> bool {
        match self {
            Outcome::Failed | Outcome::Error => true,
            Outcome::Passed
            | Outcome::Skipped
            | Outcome::NotClaimed
            | Outcome::NotApplicable
            | Outcome::Interrupted => false,
        }
    }

    /// The ANSI SGR colour code terminals show the outcome in.
    pub fn colour(self) -> &'static str {
        match self {
            Outcome::Passed => "32",
            Outcome::Failed => "31",
            Outcome::Error => "1;31",
            Outcome::Skipped => "33",
            Outcome::NotClaimed | Outcome::NotApplicable => "36",
            Outcome::Interrupted => "35",
        }
    }

    /// The symbol reports show beside the outcome's colour, so that it reads without colour too.
    pub fn symbol(self) -> &'static str {
        match self {
            Outcome::Passed => "✔",
            Outcome::Failed => "✘",
            Outcome::Error => "⚠",
            Outcome::Skipped => "↷",
            Outcome::NotClaimed => "○",
            Outcome::NotApplicable => "–",
            Outcome::Interrupted => "⊘",
        }
    }

    /// The CSS colour `report.html` shows the outcome in.
    pub fn html_colour(self) -> &'static str {
        match self {
            Outcome::Passed => "#1a7f37",
            Outcome::Failed => "#cf222e",
            Outcome::Error => "#8b1a1a",
            Outcome::Skipped => "#9a6700",
            Outcome::NotClaimed => "#0969da",
            Outcome::NotApplicable => "#57606a",
            Outcome::Interrupted => "#8250df",
        }
    }

    /// `text` (the outcome's word, padded) in the outcome's colour when `colour` is set.
    pub fn paint(self, text: &str, colour: bool) -> String {
        if colour {
            format!("\x1b[{}m{text}\x1b[0m", self.colour())
        } else {
            text.to_owned()
        }
    }
}

/// One scenario × subject × backend result (one per iteration with `--repeat`).
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
    /// Failure, skip or interruption reason, whole; empty when passed.
    pub message: String,
    /// Which run of the case this is, from 1 (`--repeat N` runs each case N times).
    #[serde(default = "first_iteration")]
    pub iteration: u32,
    /// When the case started; `None` when it never did.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// The case's namespace; `None` when it never got one.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Where the case's failure artefacts (logs, timelines, events) were saved, if anywhere.
    #[serde(default)]
    pub artefacts: Option<PathBuf>,
    /// What the case did, for humans: its namespace and the timeline of each of its pods.
    #[serde(default)]
    pub timeline: String,
    /// For [`Outcome::NotClaimed`]: how the scenario ended (its message is in `message`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_have_been: Option<Outcome>,
    /// What the case did, as data: every pod it made, with each container's runs.
    #[serde(default)]
    pub pods: Vec<PodTrace>,
    /// What the harness did and saw, oldest first: faults, backups, readiness.
    #[serde(default)]
    pub events: Vec<CaseEvent>,
    /// The harness's own work in this case (the rest of `duration_ms` is waiting for the
    /// workload); `None` when the case never started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub harness: Option<HarnessShare>,
}

fn first_iteration() -> u32 {
    1
}

impl ScenarioResult {
    /// A result with no iteration (1), start, namespace, artefacts or timeline yet.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        subject: impl Into<String>,
        backend: impl Into<String>,
        outcome: Outcome,
        duration: Duration,
        message: impl Into<String>,
    ) -> Self {
        ScenarioResult {
            id: id.into(),
            name: name.into(),
            subject: subject.into(),
            backend: backend.into(),
            outcome,
            duration_ms: duration.as_millis() as u64,
            message: message.into(),
            iteration: 1,
            started_at: None,
            namespace: None,
            artefacts: None,
            timeline: String::new(),
            would_have_been: None,
            pods: Vec::new(),
            events: Vec::new(),
            harness: None,
        }
    }

    /// `ID name`, e.g. `INIT-1 restore-empty`.
    pub fn title(&self) -> String {
        format!("{} {}", self.id, self.name)
    }
}

/// The whole run as written to `report.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// The program that ran the catalog (`phasecheck`).
    #[serde(default)]
    pub tool: String,
    /// Its version.
    #[serde(default)]
    pub version: String,
    /// Catalog version the run checked against.
    pub catalog: String,
    /// Runtime name (`local`, `kind`, …).
    pub runtime: String,
    /// When the run started.
    #[serde(default)]
    pub started_at: DateTime<Utc>,
    /// How the local runtime isolated containers: `sandbox`, or how it fell short of a cluster
    /// (no root, no sandboxes) — a lower fidelity than the outcomes alone show. Absent on a
    /// cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Wall time of the whole run.
    pub wall_ms: u64,
    /// The options the run was started with, as the command line names them.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Why the run stopped before every case ended (`SIGTERM`, `--fail-fast …`); `None` when
    /// it did not.
    #[serde(default)]
    pub stopped: Option<String>,
    /// One entry per scenario × subject × backend × iteration.
    pub scenarios: Vec<ScenarioResult>,
}

impl RunReport {
    /// An empty report of a run of `catalog` on `runtime` that started now.
    pub fn new(catalog: impl Into<String>, runtime: impl Into<String>) -> Self {
        RunReport {
            tool: String::new(),
            version: String::new(),
            catalog: catalog.into(),
            runtime: runtime.into(),
            started_at: Utc::now(),
            isolation: None,
            wall_ms: 0,
            options: serde_json::Value::Null,
            stopped: None,
            scenarios: Vec::new(),
        }
    }

    /// Count of results with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.scenarios
            .iter()
            .filter(|r| r.outcome == outcome)
            .count()
    }

    /// True when no result fails the run ([`Outcome::fails_run`]).
    pub fn all_passed(&self) -> bool {
        !self.scenarios.iter().any(|r| r.outcome.fails_run())
    }

    /// Checks that `dir` is, or can be created as, a writable directory, creating it: what
    /// [`RunReport::write`] needs, checked before a run starts.
    pub fn prepare_dir(dir: &Path) -> Result<()> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::NotADirectory {
                path: dir.to_owned(),
            });
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.to_owned(),
            source,
        })?;
        let probe = dir.join(format!(".phasecheck-write-test-{}", std::process::id()));
        write_file(&probe, b"")?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// Writes `report.json`, `junit.xml` and `report.html` into `dir` (created if missing);
    /// returns their paths.
    pub fn write(&self, dir: &Path) -> Result<ReportFiles> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::NotADirectory {
                path: dir.to_owned(),
            });
        }
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
        let html_path = dir.join("report.html");
        write_file(&html_path, html::render(self, dir).as_bytes())?;
        Ok(ReportFiles {
            json: json_path,
            junit: junit_path,
            html: html_path,
        })
    }

    /// Whether some case ran more than once (`--repeat`).
    pub fn repeated(&self) -> bool {
        self.scenarios.iter().any(|r| r.iteration > 1)
    }

    /// The JUnit form: one suite per subject/backend pair, one case per scenario (and
    /// iteration), each with its properties, whole message and timeline.
    pub fn to_junit(&self) -> JunitReport {
        let mut report = JunitReport::new("phasecheck");
        report.set_timestamp(self.started_at);
        report.set_time(Duration::from_millis(self.wall_ms));
        let repeated = self.repeated();
        let mut suites: Vec<(String, TestSuite, Span)> = Vec::new();
        for result in &self.scenarios {
            let suite_name = format!("{}/{}", result.subject, result.backend);
            let index = match suites.iter().position(|(name, ..)| *name == suite_name) {
                Some(index) => index,
                None => {
                    let mut suite = TestSuite::new(suite_name.clone());
                    suite.add_properties([
                        Property::new("subject", result.subject.clone()),
                        Property::new("backend", result.backend.clone()),
                        Property::new("runtime", self.runtime.clone()),
                        Property::new("catalog", self.catalog.clone()),
                    ]);
                    suites.push((suite_name.clone(), suite, Span::default()));
                    suites.len() - 1
                }
            };
            let (_, suite, span) = &mut suites[index];
            let mut name = result.title();
            if repeated {
                let _ = write!(name, " #{}", result.iteration);
            }
            let mut case = TestCase::new(name, junit_status(result));
            case.set_classname(suite_name);
            case.set_time(Duration::from_millis(result.duration_ms));
            let mut properties = vec![
                Property::new("subject", result.subject.clone()),
                Property::new("backend", result.backend.clone()),
                Property::new("runtime", self.runtime.clone()),
                Property::new("outcome", result.outcome.as_str()),
            ];
            if repeated {
                properties.push(Property::new("iteration", result.iteration.to_string()));
            }
            if let Some(ns) = &result.namespace {
                properties.push(Property::new("namespace", ns.clone()));
            }
            if let Some(dir) = &result.artefacts {
                properties.push(Property::new("artefacts", dir.display().to_string()));
            }
            case.add_properties(properties);
            if let Some(at) = result.started_at {
                case.set_timestamp(at);
                span.add(at, result.duration_ms);
            }
            if !result.timeline.is_empty() {
                case.set_system_out(result.timeline.clone());
            }
            suite.add_test_case(case);
        }
        report.add_test_suites(suites.into_iter().map(|(_, mut suite, span)| {
            if let Some((start, end)) = span.0 {
                suite.set_timestamp(start);
                suite.set_time((end - start).to_std().unwrap_or_default());
            }
            suite
        }));
        report
    }

    /// The terminal summary: one row per result (per case with counts when cases were
    /// repeated), then the totals and the wall time. Outcomes are coloured when `colour`.
    pub fn summary(&self, colour: bool) -> String {
        let rows: Vec<Row> = if self.repeated() {
            Row::grouped(&self.scenarios)
        } else {
            self.scenarios.iter().map(Row::single).collect()
        };
        let width = |f: &dyn Fn(&Row) -> usize, header: &str| {
            rows.iter().map(f).max().unwrap_or(0).max(header.len())
        };
        let w_title = width(&|r| r.title.len(), "scenario");
        let w_subject = width(&|r| r.subject.len(), "subject");
        let w_backend = width(&|r| r.backend.len(), "backend");
        let w_runs = width(&|r| r.runs.len(), "passed");
        let w_outcome = width(&|r| r.outcome.len(), "outcome");
        let w_time = width(&|r| r.time.len(), "time");
        let mut out = String::new();
        let runs_header = if self.repeated() { "passed" } else { "" };
        let line = |out: &mut String, cells: [&str; 7]| {
            let mut text = format!(
                "{:<w_title$}  {:<w_subject$}  {:<w_backend$}  ",
                cells[0], cells[1], cells[2]
            );
            if self.repeated() {
                let _ = write!(text, "{:>w_runs$}  ", cells[3]);
            }
            let _ = write!(text, "{}  {:>w_time$}  {}", cells[4], cells[5], cells[6]);
            let _ = writeln!(out, "{}", text.trim_end());
        };
        line(
            &mut out,
            [
                "scenario",
                "subject",
                "backend",
                runs_header,
                &format!("{:<w_outcome$}", "outcome"),
                "time",
                "message",
            ],
        );
        for row in &rows {
            let padded = format!("{:<w_outcome$}", row.outcome);
            let outcome = match row.tint {
                Some(outcome) => outcome.paint(&padded, colour),
                None if colour => format!("\x1b[1;31m{padded}\x1b[0m"),
                None => padded,
            };
            line(
                &mut out,
                [
                    &row.title,
                    &row.subject,
                    &row.backend,
                    &row.runs,
                    &outcome,
                    &row.time,
                    &row.message,
                ],
            );
        }
        if self.repeated() {
            let flaky = rows.iter().filter(|r| r.flaky).count();
            let _ = writeln!(
                out,
                "{} case(s), each run {} time(s): {flaky} flaky (passed and failed)",
                rows.len(),
                self.scenarios
                    .iter()
                    .map(|r| r.iteration)
                    .max()
                    .unwrap_or(1),
            );
        }
        if let Some(note) = self.isolation.as_deref().filter(|n| *n != "sandbox") {
            let _ = writeln!(out, "LOWER FIDELITY: the local runtime ran with {note}");
        }
        let mut totals: Vec<String> = Vec::new();
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            let n = self.count(outcome);
            // NB: the first three are always shown (scripts read them); others when present.
            if i < 3 || n > 0 {
                totals.push(format!("{n} {}", outcome.as_str()));
            }
        }
        let _ = writeln!(
            out,
            "{} in {:.1}s wall time",
            totals.join(", "),
            self.wall_ms as f64 / 1000.0
        );
        out
    }

    /// [`RunReport::summary`] without colour.
    pub fn summary_table(&self) -> String {
        self.summary(false)
    }
}

/// The files [`RunReport::write`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.json`.
    pub json: PathBuf,
    /// `junit.xml`.
    pub junit: PathBuf,
    /// `report.html`.
    pub html: PathBuf,
}

/// The JUnit status of a result: its outcome, with the whole message as the body.
fn junit_status(result: &ScenarioResult) -> TestCaseStatus {
    let first_line = result.message.lines().next().unwrap_or("").to_owned();
    let mut status = match result.outcome {
        Outcome::Passed => return TestCaseStatus::success(),
        Outcome::Failed => TestCaseStatus::non_success(NonSuccessKind::Failure),
        Outcome::Error => TestCaseStatus::non_success(NonSuccessKind::Error),
        Outcome::Skipped | Outcome::NotClaimed | Outcome::NotApplicable => {
            TestCaseStatus::skipped()
        }
        // NB: not a verdict on the subject; JUnit has no such status, and an error or a
        // failure would count against it.
        Outcome::Interrupted => TestCaseStatus::skipped(),
    };
    status.set_type(result.outcome.as_str());
    if !result.message.is_empty() {
        status.set_message(first_line);
        status.set_description(result.message.clone());
    }
    status
}

/// The earliest start and the latest end of a suite's cases.
#[derive(Default)]
struct Span(Option<(DateTime<Utc>, DateTime<Utc>)>);

impl Span {
    fn add(&mut self, start: DateTime<Utc>, duration_ms: u64) {
        let end = start + chrono::Duration::milliseconds(duration_ms as i64);
        self.0 = Some(match self.0 {
            None => (start, end),
            Some((s, e)) => (s.min(start), e.max(end)),
        });
    }
}

/// One row of the summary table.
struct Row {
    title: String,
    subject: String,
    backend: String,
    /// `passed/runs` when cases were repeated.
    runs: String,
    outcome: String,
    /// The colour of the outcome cell; `None` for a flaky case.
    tint: Option<Outcome>,
    flaky: bool,
    time: String,
    message: String,
}

impl Row {
    fn single(r: &ScenarioResult) -> Row {
        Row {
            title: r.title(),
            subject: r.subject.clone(),
            backend: r.backend.clone(),
            runs: String::new(),
            outcome: r.outcome.as_str().to_owned(),
            tint: Some(r.outcome),
            flaky: false,
            time: format!("{:.1}s", r.duration_ms as f64 / 1000.0),
            message: r.message.lines().next().unwrap_or("").to_owned(),
        }
    }

    /// One row per case (id, subject, backend), its iterations counted.
    fn grouped(results: &[ScenarioResult]) -> Vec<Row> {
        let mut groups: Vec<Vec<&ScenarioResult>> = Vec::new();
        for r in results {
            let same = |g: &Vec<&ScenarioResult>| {
                g[0].id == r.id && g[0].subject == r.subject && g[0].backend == r.backend
            };
            match groups.iter_mut().find(|g| same(g)) {
                Some(group) => group.push(r),
                None => groups.push(vec![r]),
            }
        }
        groups
            .into_iter()
            .map(|runs| {
                let passed = runs.iter().filter(|r| r.outcome == Outcome::Passed).count();
                let failed = runs.iter().any(|r| r.outcome.fails_run());
                let mut outcomes: Vec<Outcome> = Vec::new();
                for r in &runs {
                    if !outcomes.contains(&r.outcome) {
                        outcomes.push(r.outcome);
                    }
                }
                let flaky = passed > 0 && failed;
                let (outcome, tint) = match outcomes.as_slice() {
                    _ if flaky => ("FLAKY".to_owned(), None),
                    [one] => (one.as_str().to_owned(), Some(*one)),
                    many => (
                        many.iter()
                            .map(|o| o.as_str())
                            .collect::<Vec<_>>()
                            .join("+"),
                        many.iter().copied().find(|o| *o != Outcome::Passed),
                    ),
                };
                let longest = runs.iter().map(|r| r.duration_ms).max().unwrap_or(0);
                let message = runs
                    .iter()
                    .find(|r| !r.message.is_empty())
                    .map(|r| {
                        format!(
                            "#{}: {}",
                            r.iteration,
                            r.message.lines().next().unwrap_or("")
                        )
                    })
                    .unwrap_or_default();
                Row {
                    title: runs[0].title(),
                    subject: runs[0].subject.clone(),
                    backend: runs[0].backend.clone(),
                    runs: format!("{passed}/{}", runs.len()),
                    outcome,
                    tint,
                    flaky,
                    time: format!("{:.1}s", longest as f64 / 1000.0),
                    message,
                }
            })
            .collect()
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

    fn result(id: &str, backend: &str, outcome: Outcome, ms: u64, message: &str) -> ScenarioResult {
        let name = if id == "INIT-1" {
            "restore-empty"
        } else {
            "retention"
        };
        ScenarioResult::new(
            id,
            name,
            "phasepod",
            backend,
            outcome,
            Duration::from_millis(ms),
            message,
        )
    }

    fn sample() -> RunReport {
        let mut report = RunReport::new("v1", "local");
        report.wall_ms = 1234;
        report.scenarios = vec![
            result("INIT-1", "s3", Outcome::Passed, 800, ""),
            result(
                "MNT-4",
                "git",
                Outcome::Failed,
                900,
                "5 backups kept, KEEP=2\nmore",
            ),
        ];
        report
    }

    #[test]
    fn harness_errors_fail_the_run_and_unclaimed_or_inapplicable_ones_do_not() {
        let mut report = sample();
        report.scenarios.truncate(1);
        let mut extra = result(
            "INIT-4",
            "s3",
            Outcome::NotClaimed,
            10,
            "the app served 3 files",
        );
        extra.would_have_been = Some(Outcome::Failed);
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
    fn report_json_has_one_entry_per_result_with_the_documented_fields() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample().write(dir.path()).unwrap();
        let (json, junit) = (files.json, files.junit);
        assert!(files.html.is_file());
        let value: serde_json::Value =
            serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        for key in [
            "tool",
            "version",
            "catalog",
            "runtime",
            "started_at",
            "wall_ms",
            "options",
            "stopped",
        ] {
            assert!(value.get(key).is_some(), "missing {key}");
        }
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
            "iteration",
            "started_at",
            "namespace",
            "artefacts",
            "timeline",
            "pods",
            "events",
        ] {
            assert!(entries[1].get(key).is_some(), "missing {key}");
        }
        assert_eq!(entries[1]["outcome"], "failed");
        let xml = std::fs::read_to_string(junit).unwrap();
        assert!(xml.contains("MNT-4 retention"), "{xml}");
        assert!(xml.contains("<failure"), "{xml}");
    }

    #[test]
    fn junit_carries_properties_the_whole_message_the_timeline_and_timestamps() {
        let mut report = sample();
        let started = report.started_at;
        for r in &mut report.scenarios {
            r.started_at = Some(started);
            r.namespace = Some(format!("pc-{}", r.id.to_ascii_lowercase()));
            r.timeline = format!("namespace pc-{}\npod p ...", r.id);
        }
        report.scenarios[1].artefacts = Some(PathBuf::from("/reports/artefacts/pc-mnt-4"));
        let xml = report.to_junit().to_string().unwrap();
        for needle in [
            r#"<property name="subject" value="phasepod"/>"#,
            r#"<property name="backend" value="git"/>"#,
            r#"<property name="runtime" value="local"/>"#,
            r#"<property name="artefacts" value="/reports/artefacts/pc-mnt-4"/>"#,
            r#"message="5 backups kept, KEEP=2""#,
            "5 backups kept, KEEP=2\nmore</failure>",
            "<system-out>namespace pc-MNT-4\npod p ...</system-out>",
            "timestamp=",
        ] {
            assert!(xml.contains(needle), "`{needle}` missing from\n{xml}");
        }
    }

    #[test]
    fn an_interrupted_case_is_neither_a_failure_nor_a_pass() {
        let mut report = sample();
        report.scenarios[1].outcome = Outcome::Interrupted;
        report.scenarios[1].message = "interrupted by SIGTERM after 0.9s".into();
        assert!(report.all_passed());
        let table = report.summary_table();
        assert!(
            table.ends_with("1 passed, 0 failed, 0 skipped, 1 interrupted in 1.2s wall time\n"),
            "{table}"
        );
        let xml = report.to_junit().to_string().unwrap();
        assert!(
            xml.contains(
                r#"<skipped message="interrupted by SIGTERM after 0.9s" type="interrupted""#
            ),
            "{xml}"
        );
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

    #[test]
    fn summary_columns_line_up_and_colour_only_when_asked() {
        let mut report = sample();
        report.scenarios[0].outcome = Outcome::Interrupted;
        let table = report.summary(false);
        let starts: Vec<Option<usize>> = table
            .lines()
            .take(3)
            .map(|l| l.find("backend").or(l.find("s3 ")).or(l.find("git ")))
            .collect();
        assert!(starts.iter().all(|s| *s == starts[0]), "{table}");
        assert!(!table.contains('\x1b'));
        assert!(report.summary(true).contains("\x1b[35minterrupted\x1b[0m"));
    }

    #[test]
    fn repeated_cases_are_summed_up_per_case_and_flaky_ones_flagged() {
        let mut report = RunReport::new("v1", "local");
        for (i, outcome) in [Outcome::Passed, Outcome::Failed, Outcome::Passed]
            .into_iter()
            .enumerate()
        {
            let mut r = result(
                "MNT-4",
                "s3",
                outcome,
                100,
                if outcome == Outcome::Failed {
                    "6 kept"
                } else {
                    ""
                },
            );
            r.iteration = i as u32 + 1;
            report.scenarios.push(r);
            let mut r = result("INIT-1", "s3", Outcome::Passed, 100, "");
            r.iteration = i as u32 + 1;
            report.scenarios.push(r);
        }
        let table = report.summary_table();
        let line = |needle: &str| {
            table
                .lines()
                .find(|l| l.starts_with(needle))
                .unwrap_or_else(|| panic!("no {needle} in\n{table}"))
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(line("MNT-4")[4..6], ["2/3", "FLAKY"], "{table}");
        assert!(table.contains("#2: 6 kept"), "{table}");
        assert_eq!(line("INIT-1")[4..6], ["3/3", "passed"], "{table}");
        assert!(
            table.contains("2 case(s), each run 3 time(s): 1 flaky"),
            "{table}"
        );
        assert!(
            table.ends_with("5 passed, 1 failed, 0 skipped in 0.0s wall time\n"),
            "{table}"
        );
        let xml = report.to_junit().to_string().unwrap();
        assert!(xml.contains("MNT-4 retention #3"), "{xml}");
    }

    #[test]
    fn a_file_is_not_a_report_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let message = RunReport::prepare_dir(&file).unwrap_err().to_string();
        assert!(message.contains("is not a directory"), "{message}");
        RunReport::prepare_dir(&dir.path().join("new/reports")).unwrap();
        assert!(dir.path().join("new/reports").is_dir());
        assert_eq!(
            std::fs::read_dir(dir.path().join("new/reports"))
                .unwrap()
                .count(),
            0
        );
    }
}
