//! What a run tells GitHub Actions: an `::error` annotation per failed case (workflow commands
//! on stdout) and the conformance matrix as Markdown, appended to the job summary
//! (`$GITHUB_STEP_SUMMARY`).
//!
//! [`publish`] does both when `GITHUB_ACTIONS=true`, and nothing elsewhere. Messages in reports
//! are redacted already; annotations carry them escaped as the workflow-command syntax requires
//! (`%`, CR and LF in data; also `:` and `,` in properties).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::matrix::Matrix;
use super::{Outcome, RunReport};

/// Errors publishing to GitHub Actions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The job summary file could not be appended to.
    #[error("cannot append the job summary to {path} (GITHUB_STEP_SUMMARY): {source}")]
    Summary {
        /// The file `GITHUB_STEP_SUMMARY` names.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What [`publish`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Annotations printed (one per failed case).
    pub annotations: usize,
    /// The job summary file appended to, if `GITHUB_STEP_SUMMARY` named one.
    pub summary: Option<PathBuf>,
}

/// On GitHub Actions (`env("GITHUB_ACTIONS") == "true"`): writes one annotation per failed case
/// to `out` and appends the matrix to the file `env("GITHUB_STEP_SUMMARY")` names; `dir` is
/// where the report files are. Elsewhere it does nothing. `env` is `std::env::var(..).ok()` in
/// programs; tests pass their own.
pub fn publish(
    report: &RunReport,
    dir: &Path,
    env: impl Fn(&str) -> Option<String>,
    out: &mut dyn std::io::Write,
) -> Result<Published> {
    if env("GITHUB_ACTIONS").as_deref() != Some("true") {
        return Ok(Published::default());
    }
    let annotations = annotations(report);
    // NB: a closed stdout must not stop the job summary.
    let _ = out.write_all(annotations.as_bytes());
    let _ = out.flush();
    let mut published = Published {
        annotations: annotations.lines().count(),
        summary: None,
    };
    if let Some(path) = env("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        let append = |path: &Path| -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            file.write_all(step_summary(report, dir).as_bytes())
        };
        append(&path).map_err(|source| Error::Summary {
            path: path.clone(),
            source,
        })?;
        published.summary = Some(path);
    }
    Ok(published)
}

/// One `::error title=…::message` line per case that fails the run (failed or error).
pub fn annotations(report: &RunReport) -> String {
    let mut out = String::new();
    for r in report.scenarios.iter().filter(|r| r.outcome.fails_run()) {
        let mut title = format!(
            "{} {}/{} {}",
            r.title(),
            r.subject,
            r.backend,
            r.outcome.as_str()
        );
        if report.repeated() {
            let _ = write!(title, " (run {})", r.iteration);
        }
        let message = if r.message.is_empty() {
            r.outcome.as_str()
        } else {
            r.message.trim_end()
        };
        let _ = writeln!(
            out,
            "::error title={}::{}",
            escape_property(&title),
            escape_data(message)
        );
    }
    out
}

/// The run as Markdown: a heading with the totals, the matrix, and the failed cases' first
/// message lines.
pub fn step_summary(report: &RunReport, dir: &Path) -> String {
    let mut out = String::new();
    let totals: Vec<String> = Outcome::ALL
        .into_iter()
        .filter(|o| report.count(*o) > 0 || matches!(o, Outcome::Passed | Outcome::Failed))
        .map(|o| format!("{} {} {}", o.symbol(), report.count(o), o.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "### phasecheck: {}\n\nRuntime `{}`, catalog {}, {:.1}s wall time; report: `{}`\n",
        totals.join(", "),
        report.runtime,
        report.catalog,
        report.wall_ms as f64 / 1000.0,
        dir.join("report.html").display()
    );
    if let Some(stopped) = &report.stopped {
        let _ = writeln!(out, "Stopped early: {}\n", cell(stopped));
    }
    let matrix = Matrix::of(report);
    if !matrix.rows.is_empty() {
        out.push_str("| requirement |");
        for c in &matrix.columns {
            let _ = write!(out, " {} |", cell(&format!("{} {}", c.subject, c.backend)));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(matrix.columns.len()));
        out.push('\n');
        for (row, cells) in matrix.rows.iter().zip(&matrix.cells) {
            let _ = write!(out, "| {} |", cell(&format!("{} {}", row.id, row.name)));
            for c in cells {
                match c.outcome() {
                    None => out.push_str("  |"),
                    Some(o) if c.results.len() == 1 => {
                        let _ = write!(out, " {} {} |", o.symbol(), o.as_str());
                    }
                    Some(o) => {
                        let passed = c
                            .results
                            .iter()
                            .filter(|(_, r)| r.outcome == Outcome::Passed)
                            .count();
                        let _ = write!(
                            out,
                            " {} {} ({passed}/{} passed{}) |",
                            o.symbol(),
                            o.as_str(),
                            c.results.len(),
                            if c.flaky() { ", flaky" } else { "" }
                        );
                    }
                }
            }
            out.push('\n');
        }
    }
    let failed: Vec<_> = report
        .scenarios
        .iter()
        .filter(|r| r.outcome.fails_run())
        .collect();
    if !failed.is_empty() {
        out.push_str("\n| failed case | message |\n|---|---|\n");
        for r in failed {
            let _ = writeln!(
                out,
                "| {} {} {}/{} | {} |",
                r.outcome.symbol(),
                cell(&r.title()),
                cell(&r.subject),
                cell(&r.backend),
                cell(r.message.lines().next().unwrap_or(""))
            );
        }
    }
    out.push('\n');
    out
}

/// Text for one Markdown table cell: pipes escaped, no line breaks, HTML inert.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('<', "&lt;")
        .replace(['\r', '\n'], " ")
}

/// A workflow command's data (the message).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A workflow command's property value (the title).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::report::ScenarioResult;

    fn report() -> RunReport {
        let mut report = RunReport::new("v1", "local");
        report.scenarios = vec![
            ScenarioResult::new(
                "INIT-1",
                "restore-empty",
                "phasepod",
                "s3",
                Outcome::Passed,
                Duration::ZERO,
                "",
            ),
            ScenarioResult::new(
                "SEC-1",
                "creds-isolated",
                "broken, really",
                "s3",
                Outcome::Failed,
                Duration::ZERO,
                "100% leaked: key\nline two | <b>",
            ),
        ];
        report
    }

    #[test]
    fn nothing_is_published_outside_github_actions() {
        let mut out = Vec::new();
        let published = publish(&report(), Path::new("r"), |_| None, &mut out).unwrap();
        assert_eq!(published, Published::default());
        assert!(out.is_empty());
    }

    #[test]
    fn on_github_actions_each_failed_case_is_annotated_and_the_matrix_appended() {
        let dir = tempfile::tempdir().unwrap();
        let summary = dir.path().join("summary.md");
        std::fs::write(&summary, "earlier step\n").unwrap();
        let env = |name: &str| match name {
            "GITHUB_ACTIONS" => Some("true".to_owned()),
            "GITHUB_STEP_SUMMARY" => Some(summary.display().to_string()),
            _ => None,
        };
        let mut out = Vec::new();
        let published = publish(&report(), Path::new("reports"), env, &mut out).unwrap();
        assert_eq!(published.annotations, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "::error title=SEC-1 creds-isolated broken%2C really/s3 failed::\
             100%25 leaked: key%0Aline two | <b>\n"
        );
        let markdown = std::fs::read_to_string(&summary).unwrap();
        assert!(markdown.starts_with("earlier step\n### phasecheck: ✔ 1 passed, ✘ 1 failed"));
        assert!(markdown.contains("| requirement | phasepod s3 | broken, really s3 |"));
        assert!(markdown.contains("| INIT-1 restore-empty | ✔ passed |  |"));
        assert!(markdown.contains("| SEC-1 creds-isolated |  | ✘ failed |"));
        assert!(markdown.contains("| 100% leaked: key |"), "{markdown}");
    }

    #[test]
    fn a_summary_file_that_cannot_be_written_is_an_error_naming_it() {
        let env = |name: &str| match name {
            "GITHUB_ACTIONS" => Some("true".to_owned()),
            "GITHUB_STEP_SUMMARY" => Some("/nonexistent/dir/summary.md".to_owned()),
            _ => None,
        };
        let error = publish(&report(), Path::new("r"), env, &mut Vec::new()).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/dir/summary.md"));
    }

    #[test]
    fn table_cells_escape_pipes_and_html() {
        assert_eq!(cell("a|b <i>\nc"), "a\\|b &lt;i> c");
    }
}
