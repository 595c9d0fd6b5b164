//! `report.html`: one self-contained page per run (inline CSS and SVG, no network, readable on
//! a laptop and printable).
//!
//! It shows the run (tool, version, catalog, runtime, isolation, services, start, wall time, why
//! it stopped), the conformance matrix (`matrix.rs`: requirement × subject × backend, a colour and
//! a symbol per outcome) and every case: failed ones first and open, passed ones collapsed, each
//! with its message, a timeline drawn as SVG (`timeline.rs`: one lane per container, markers for
//! faults, backups and readiness), the events as a table, the timeline as text and links to the
//! artefacts saved for it (`case.rs`).
//!
//! Every text from the run goes through [`esc`]; messages were redacted before they reached the
//! report, and nothing here adds any.

use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, SecondsFormat, Utc};

use super::{Outcome, RunReport};

mod case;
mod matrix;
mod timeline;

/// The page for `report`, whose files live in `dir` (artefact links are made relative to it).
pub fn render(report: &RunReport, dir: &Path) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let failing = report
        .scenarios
        .iter()
        .filter(|r| r.outcome.fails_run())
        .count();
    let title = if failing == 0 {
        format!(
            "phasecheck: {} case(s), none failed",
            report.scenarios.len()
        )
    } else {
        format!(
            "phasecheck: {failing} of {} case(s) failed",
            report.scenarios.len()
        )
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>\n{}</style>\n</head>\n<body>\n",
        esc(&title),
        stylesheet()
    );
    header(report, &mut out);
    matrix::render(report, &mut out);
    case::render_all(report, dir, &mut out);
    // NB: a printed page shows closed <details> closed; open every one for print.
    out.push_str(
        "<script>addEventListener('beforeprint',()=>document.querySelectorAll('details')\
         .forEach(d=>d.open=true));</script>\n</body>\n</html>\n",
    );
    out
}

/// The run's facts and totals.
fn header(report: &RunReport, out: &mut String) {
    out.push_str("<header>\n<h1>phasecheck report</h1>\n<dl class=\"run\">\n");
    let mut fact = |name: &str, value: String| {
        let _ = writeln!(
            out,
            "<div><dt>{}</dt><dd data-fact=\"{}\">{}</dd></div>",
            esc(name),
            esc(name),
            esc(&value)
        );
    };
    let tool = match (report.tool.as_str(), report.version.as_str()) {
        ("", _) => "phasecheck".to_owned(),
        (tool, "") => tool.to_owned(),
        (tool, version) => format!("{tool} {version}"),
    };
    fact("tool", tool);
    fact("catalog", report.catalog.clone());
    fact("runtime", report.runtime.clone());
    if let Some(isolation) = &report.isolation {
        fact("isolation", isolation.clone());
    }
    if let Some(services) = report.options["services"].as_str() {
        fact("services", services.to_owned());
    }
    fact("started", stamp(report.started_at));
    fact("wall time", seconds(report.wall_ms));
    if let Some(stopped) = &report.stopped {
        fact("stopped", stopped.clone());
    }
    out.push_str("</dl>\n<p class=\"totals\">");
    for outcome in Outcome::ALL {
        let n = report.count(outcome);
        if n > 0 || matches!(outcome, Outcome::Passed | Outcome::Failed) {
            let _ = write!(
                out,
                "<span class=\"o-{0}\" data-outcome=\"{0}\" data-count=\"{n}\">{1} {n} {0}</span> ",
                outcome.as_str(),
                outcome.symbol()
            );
        }
    }
    out.push_str("</p>\n");
    if report.isolation.as_deref().is_some_and(|i| i != "sandbox") {
        out.push_str(
            "<p class=\"warning\">LOWER FIDELITY: the local runtime ran without the isolation \
             of a cluster (see isolation above).</p>\n",
        );
    }
    out.push_str("</header>\n");
}

/// The stylesheet: layout, one colour per outcome, the timeline's marks, print rules.
fn stylesheet() -> String {
    let mut css = String::from(
        "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;\
         margin:0 auto;max-width:1200px;padding:16px 24px;color:#1f2328;background:#fff}\n\
         h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;margin:24px 0 8px}\n\
         dl.run{display:flex;flex-wrap:wrap;gap:4px 24px;margin:0 0 8px}\
         dl.run div{display:flex;gap:6px}dt{color:#57606a}dd{margin:0;font-weight:600}\n\
         .totals span{margin-right:14px;font-weight:600}\n\
         .warning{color:#8b1a1a;font-weight:600}\n\
         .legend span{margin-right:14px;white-space:nowrap}\n\
         table{border-collapse:collapse}th,td{border:1px solid #d0d7de;padding:3px 8px;\
         text-align:left;vertical-align:top}th{background:#f6f8fa}\n\
         table.matrix td.cell{text-align:center;white-space:nowrap}\
         table.matrix td.cell a{color:inherit;text-decoration:none;font-weight:600;margin:0 2px}\n\
         td.empty{background:#f6f8fa}\n\
         details.case{border:1px solid #d0d7de;border-left-width:6px;border-radius:4px;\
         margin:8px 0;padding:4px 10px}\n\
         details.case>summary{cursor:pointer;font-weight:600}\
         summary .meta{font-weight:400;color:#57606a;margin-left:8px}\n\
         pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:8px;\
         border-radius:4px;font:12px/1.4 'DejaVu Sans Mono',monospace;margin:6px 0}\n\
         pre.message{background:#fff5f5;border:1px solid #ffcecb}\n\
         svg.timeline{width:100%;height:auto;display:block;margin:6px 0;\
         font:11px 'DejaVu Sans',sans-serif}\n\
         svg .lane-label{fill:#1f2328}svg .pod-label{fill:#1f2328;font-weight:600}\
         svg .axis{stroke:#d0d7de}svg .tick{fill:#57606a}\n\
         svg .run{stroke:#1f2328;stroke-width:.5}svg .run.ok{fill:#2da44e}\
         svg .run.err{fill:#cf222e}svg .run.killed{fill:#bc4c00}\
         svg .run.start-error{fill:#8b1a1a}svg .run.running{fill:#54aeff}\
         svg .run-text{fill:#fff;font-size:10px}\n\
         svg .pod-life{stroke:#57606a;stroke-width:2}svg .deleted{stroke:#57606a;stroke-width:2}\n\
         svg .fault{fill:#cf222e}svg .fault-line{stroke:#cf222e;stroke-dasharray:4 3}\
         svg .fault-text{fill:#cf222e}\n\
         svg .backup{fill:#1a7f37}svg .seeded{fill:#8c959f}svg .ready{fill:#0969da}\
         svg .end-line{stroke:#8c959f;stroke-dasharray:2 2}\n\
         table.events td.t{font-variant-numeric:tabular-nums;text-align:right}\n\
         @media print{body{max-width:none;padding:0}details.case{break-inside:avoid}}\n",
    );
    for outcome in Outcome::ALL {
        let _ = writeln!(
            css,
            ".o-{0}:not(details){{color:{1}}}details.case.o-{0}{{border-left-color:{1}}}\
             td.cell.o-{0}{{background:{1}1a}}",
            outcome.as_str(),
            outcome.html_colour()
        );
    }
    css
}

/// `text` safe as HTML text and as a quoted attribute value.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A UTC time as reports print it (RFC 3339, milliseconds).
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Milliseconds as seconds with one decimal.
fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(r#"<a href="x">&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
