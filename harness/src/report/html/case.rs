//! The cases section: one `<details>` per case, worst outcome first; failed ones (and harness
//! errors) open, the rest collapsed. Each holds the message, the timeline, the events, links to
//! the saved artefacts and the timeline as text.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{esc, seconds, stamp, timeline};
use crate::report::matrix::severity;
use crate::report::{RunReport, ScenarioResult};

/// Appends every case of `report` (files in `dir`) to `out`.
pub(super) fn render_all(report: &RunReport, dir: &Path, out: &mut String) {
    out.push_str("<section id=\"cases\">\n<h2>Cases</h2>\n");
    let mut order: Vec<(usize, &ScenarioResult)> = report.scenarios.iter().enumerate().collect();
    order.sort_by_key(|(index, r)| (severity(r.outcome), *index));
    for (index, result) in order {
        render(index, result, report.repeated(), dir, out);
    }
    out.push_str("</section>\n");
}

fn render(index: usize, r: &ScenarioResult, repeated: bool, dir: &Path, out: &mut String) {
    let outcome = r.outcome.as_str();
    let _ = write!(
        out,
        "<details class=\"case o-{outcome}\" id=\"case-{index}\" data-outcome=\"{outcome}\" \
         data-id=\"{}\" data-subject=\"{}\" data-backend=\"{}\"{}>\n<summary>\
         <span class=\"o-{outcome}\">{} {outcome}</span> {}",
        esc(&r.id),
        esc(&r.subject),
        esc(&r.backend),
        if r.outcome.fails_run() { " open" } else { "" },
        r.outcome.symbol(),
        esc(&r.title()),
    );
    let mut meta = vec![format!("{}/{}", r.subject, r.backend)];
    if repeated {
        meta.push(format!("#{}", r.iteration));
    }
    meta.push(seconds(r.duration_ms));
    if let Some(ns) = &r.namespace {
        meta.push(format!("namespace {ns}"));
    }
    let _ = writeln!(
        out,
        "<span class=\"meta\">{}</span></summary>",
        esc(&meta.join(" · "))
    );
    if let Some(would) = r.would_have_been {
        let _ = writeln!(
            out,
            "<p>Not claimed by the subject; judged, it would have been \
             <span class=\"o-{0}\">{1} {0}</span>.</p>",
            would.as_str(),
            would.symbol()
        );
    }
    if !r.message.is_empty() {
        let _ = writeln!(out, "<pre class=\"message\">{}</pre>", esc(&r.message));
    }
    timeline::render(r, out);
    events(r, out);
    artefacts(r, dir, out);
    if !r.timeline.is_empty() {
        let _ = writeln!(
            out,
            "<details class=\"text-timeline\"><summary>timeline as text</summary>\
             <pre>{}</pre></details>",
            esc(&r.timeline)
        );
    }
    out.push_str("</details>\n");
}

/// The events as a table: seconds from the case's start, kind, what.
fn events(r: &ScenarioResult, out: &mut String) {
    if r.events.is_empty() {
        return;
    }
    out.push_str(
        "<table class=\"events\"><thead><tr><th>+s</th><th>at (UTC)</th><th>event</th>\
         <th>what</th></tr></thead><tbody>\n",
    );
    for e in &r.events {
        let offset = r
            .started_at
            .map(|s| format!("{:.2}", (e.at - s).num_milliseconds() as f64 / 1000.0))
            .unwrap_or_default();
        let mut what = esc(&e.what);
        if let Some(seen) = e.seen_at {
            let _ = write!(what, " (first listed {})", stamp(seen));
        }
        let _ = writeln!(
            out,
            "<tr class=\"event {0}\"><td class=\"t\">{offset}</td><td>{1}</td><td>{0}</td>\
             <td>{what}</td></tr>",
            e.kind.as_str(),
            stamp(e.at)
        );
    }
    out.push_str("</tbody></table>\n");
}

/// Links to the files saved for the case, relative to the report directory when under it.
fn artefacts(r: &ScenarioResult, dir: &Path, out: &mut String) {
    let Some(artefacts) = &r.artefacts else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(artefacts)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    out.push_str("<div class=\"artefacts\">artefacts: ");
    if files.is_empty() {
        let _ = write!(out, "{} (empty)", esc(&artefacts.display().to_string()));
    }
    out.push_str("<ul>");
    for file in &files {
        let name = file
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        let href = match file.strip_prefix(dir) {
            Ok(relative) => url_path(relative),
            Err(_) => format!("file://{}", url_path(file)),
        };
        let _ = write!(
            out,
            "<li><a href=\"{}\">{}</a></li>",
            esc(&href),
            esc(&name)
        );
    }
    out.push_str("</ul></div>\n");
}

/// `path` as a URL path: every byte but unreserved ones and `/` percent-encoded.
fn url_path(path: &Path) -> String {
    let text = path.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artefact_links_are_percent_encoded_paths() {
        assert_eq!(
            url_path(Path::new("artefacts/pc-x/a b<\"ü.log")),
            "artefacts/pc-x/a%20b%3C%22%C3%BC.log"
        );
    }
}
