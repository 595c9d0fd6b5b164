//! The conformance matrix: requirement × subject × backend, one cell per case holding every
//! iteration's result. `report.html` and the GitHub job summary both draw it.

use super::{Outcome, RunReport, ScenarioResult};

/// A subject/backend pair: one column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Subject name (empty for run-wide entries such as a cluster teardown).
    pub subject: String,
    /// Backend (`s3`, `git`; empty for run-wide entries).
    pub backend: String,
}

/// A requirement: one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Catalog ID, e.g. `INIT-1`.
    pub id: String,
    /// Catalog short name, e.g. `restore-empty`.
    pub name: String,
}

/// The results of one case (one requirement on one subject and backend): one per iteration,
/// with their index in [`RunReport::scenarios`].
#[derive(Clone, Debug, Default)]
pub struct Cell<'r> {
    /// `(index, result)` per iteration, in report order.
    pub results: Vec<(usize, &'r ScenarioResult)>,
}

impl Cell<'_> {
    /// The outcome the cell stands for: the worst of its iterations (failures first).
    pub fn outcome(&self) -> Option<Outcome> {
        self.results
            .iter()
            .map(|(_, r)| r.outcome)
            .min_by_key(|o| severity(*o))
    }

    /// Whether some iterations passed and others failed.
    pub fn flaky(&self) -> bool {
        self.results
            .iter()
            .any(|(_, r)| r.outcome == Outcome::Passed)
            && self.results.iter().any(|(_, r)| r.outcome.fails_run())
    }
}

/// The matrix of a run.
#[derive(Clone, Debug)]
pub struct Matrix<'r> {
    /// Requirements, in the order they first appear in the report (the catalog's).
    pub rows: Vec<Row>,
    /// Subject/backend pairs, in the order they first appear.
    pub columns: Vec<Column>,
    /// `cells[row][column]`; an empty cell: that requirement did not run for that pair.
    pub cells: Vec<Vec<Cell<'r>>>,
}

impl<'r> Matrix<'r> {
    /// The matrix of `report`.
    pub fn of(report: &'r RunReport) -> Self {
        let mut rows: Vec<Row> = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        for r in &report.scenarios {
            if !rows.iter().any(|row| row.id == r.id) {
                rows.push(Row {
                    id: r.id.clone(),
                    name: r.name.clone(),
                });
            }
            if !columns
                .iter()
                .any(|c| c.subject == r.subject && c.backend == r.backend)
            {
                columns.push(Column {
                    subject: r.subject.clone(),
                    backend: r.backend.clone(),
                });
            }
        }
        let mut cells = vec![vec![Cell::default(); columns.len()]; rows.len()];
        for (index, r) in report.scenarios.iter().enumerate() {
            let row = rows.iter().position(|row| row.id == r.id).expect("added");
            let column = columns
                .iter()
                .position(|c| c.subject == r.subject && c.backend == r.backend)
                .expect("added");
            cells[row][column].results.push((index, r));
        }
        Matrix {
            rows,
            columns,
            cells,
        }
    }

    /// Subjects with how many columns (backends) each spans, in column order.
    pub fn subject_spans(&self) -> Vec<(&str, usize)> {
        let mut spans: Vec<(&str, usize)> = Vec::new();
        for c in &self.columns {
            match spans.last_mut() {
                Some((subject, n)) if *subject == c.subject => *n += 1,
                _ => spans.push((&c.subject, 1)),
            }
        }
        spans
    }
}

/// How bad an outcome is, worst first: what a cell of several iterations shows, and the order in
/// which `report.html` lists cases.
pub fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Failed => 0,
        Outcome::Error => 1,
        Outcome::Interrupted => 2,
        Outcome::NotClaimed => 3,
        Outcome::Skipped => 4,
        Outcome::NotApplicable => 5,
        Outcome::Passed => 6,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn result(id: &str, subject: &str, backend: &str, outcome: Outcome) -> ScenarioResult {
        ScenarioResult::new(id, "n", subject, backend, outcome, Duration::ZERO, "")
    }

    #[test]
    fn each_case_is_one_cell_and_repeats_share_it_showing_the_worst() {
        let mut report = RunReport::new("v1", "local");
        report.scenarios = vec![
            result("INIT-1", "a", "s3", Outcome::Passed),
            result("INIT-1", "a", "git", Outcome::Passed),
            result("MNT-1", "a", "s3", Outcome::Failed),
            result("INIT-1", "b", "s3", Outcome::Skipped),
            result("INIT-1", "a", "s3", Outcome::Failed),
        ];
        let matrix = Matrix::of(&report);
        assert_eq!(matrix.rows.len(), 2);
        assert_eq!(matrix.columns.len(), 3);
        assert_eq!(matrix.subject_spans(), vec![("a", 2), ("b", 1)]);
        let cell = &matrix.cells[0][0];
        assert_eq!(cell.results.len(), 2);
        assert_eq!(cell.outcome(), Some(Outcome::Failed));
        assert!(cell.flaky());
        assert!(matrix.cells[1][1].results.is_empty());
        assert_eq!(matrix.cells[1][1].outcome(), None);
    }
}
