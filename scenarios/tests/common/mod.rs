//! What the tiers that run whole catalogs share.

use std::path::Path;

use harness::report::{Outcome, RunReport};

/// Writes `report` under `dir` (report.json, junit.xml, report.html), prints its table, tells
/// GitHub Actions (annotations, job summary) when run there, and fails listing every case whose
/// outcome is not allowed (`Passed`, plus `Skipped` when `skips_allowed`). Returns how many
/// passed.
pub fn write_and_expect_passed(report: &RunReport, dir: &Path, skips_allowed: bool) -> usize {
    report.write(dir).expect("the reports are written");
    println!("{}", report.summary_table());
    scenarios::runner::publish_to_github(report, dir).expect("the job summary is written");
    let bad: Vec<String> = report
        .scenarios
        .iter()
        .filter(|r| r.outcome.fails_run() || (r.outcome == Outcome::Skipped && !skips_allowed))
        .map(|r| {
            format!(
                "{} {} {} {}: {}",
                r.outcome.as_str(),
                r.id,
                r.subject,
                r.backend,
                r.message
            )
        })
        .collect();
    assert!(
        bad.is_empty(),
        "on the {} runtime:\n{}",
        report.runtime,
        bad.join("\n")
    );
    report
        .scenarios
        .iter()
        .filter(|r| r.outcome == Outcome::Passed)
        .count()
}
