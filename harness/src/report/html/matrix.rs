//! The matrix section: a legend, then one row per requirement and one column per subject and
//! backend; each case is one `td.cell` with its outcome's colour, symbol and word, linking to the
//! case below (one link per iteration when cases were repeated).

use std::fmt::Write as _;

use super::esc;
use crate::report::matrix::Matrix;
use crate::report::{Outcome, RunReport};

/// Appends the matrix section of `report` to `out`.
pub(super) fn render(report: &RunReport, out: &mut String) {
    out.push_str("<section id=\"matrix\">\n<h2>Conformance matrix</h2>\n<p class=\"legend\">");
    for outcome in Outcome::ALL {
        let _ = write!(
            out,
            "<span class=\"o-{0}\">{1} {0}</span>",
            outcome.as_str(),
            outcome.symbol()
        );
    }
    out.push_str("</p>\n");
    let matrix = Matrix::of(report);
    if matrix.rows.is_empty() {
        out.push_str("<p>No case was planned.</p>\n</section>\n");
        return;
    }
    out.push_str("<table class=\"matrix\">\n<thead>\n<tr><th rowspan=\"2\">requirement</th>");
    for (subject, span) in matrix.subject_spans() {
        let name = if subject.is_empty() { "(run)" } else { subject };
        let _ = write!(out, "<th colspan=\"{span}\">{}</th>", esc(name));
    }
    out.push_str("</tr>\n<tr>");
    for column in &matrix.columns {
        let _ = write!(out, "<th>{}</th>", esc(&column.backend));
    }
    out.push_str("</tr>\n</thead>\n<tbody>\n");
    for (row, cells) in matrix.rows.iter().zip(&matrix.cells) {
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><span class=\"id\">{}</span> {}</th>",
            esc(&row.id),
            esc(&row.name)
        );
        for (column, cell) in matrix.columns.iter().zip(cells) {
            let Some(outcome) = cell.outcome() else {
                out.push_str("<td class=\"empty\"></td>");
                continue;
            };
            let _ = write!(
                out,
                "<td class=\"cell o-{0}\" data-outcome=\"{0}\" data-id=\"{1}\" \
                 data-subject=\"{2}\" data-backend=\"{3}\">",
                outcome.as_str(),
                esc(&row.id),
                esc(&column.subject),
                esc(&column.backend)
            );
            if let [(index, result)] = cell.results.as_slice() {
                let _ = write!(
                    out,
                    "<a href=\"#case-{index}\" title=\"{}\">{} {}</a>",
                    esc(&first_line(&result.message)),
                    outcome.symbol(),
                    outcome.as_str()
                );
            } else {
                for (index, result) in &cell.results {
                    let _ = write!(
                        out,
                        "<a href=\"#case-{index}\" class=\"o-{0}\" title=\"#{1} {0}\">{2}</a>",
                        result.outcome.as_str(),
                        result.iteration,
                        result.outcome.symbol()
                    );
                }
                let passed = cell
                    .results
                    .iter()
                    .filter(|(_, r)| r.outcome == Outcome::Passed)
                    .count();
                let _ = write!(out, " {passed}/{}", cell.results.len());
                if cell.flaky() {
                    out.push_str(" flaky");
                }
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_owned()
}
