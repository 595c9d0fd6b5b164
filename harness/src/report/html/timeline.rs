//! A case's timeline as inline SVG.
//!
//! Time runs left to right from the case's start (seconds on the axis). The first two lanes are
//! the harness's: faults injected (red triangles, with a dashed line through every lane) and the
//! store (green dots for backups the workload took, grey squares for backups the harness seeded).
//! Then, per pod, a line for its life (a bar where its deletion was requested, blue diamonds
//! where it was seen ready) and one lane per container: one bar per run, coloured by how it ended
//! (green exit 0, red non-zero, orange killed, light blue still running when last seen), labelled
//! with its exit code. Every mark has a `<title>` with the exact times.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{esc, stamp};
use crate::report::trace::RunTrace;
use crate::report::{CaseEvent, EventKind, PodTrace, ScenarioResult};

const WIDTH: f64 = 1000.0;
/// Where the plot starts (labels to its left).
const X0: f64 = 230.0;
/// Where the plot ends.
const X1: f64 = 985.0;
const ROW: f64 = 20.0;
const AXIS: f64 = 20.0;
/// Roughly how wide one character of the labels is.
const CHAR: f64 = 6.2;

/// Appends the timeline of `r` to `out` (a note instead when nothing ran).
pub(super) fn render(r: &ScenarioResult, out: &mut String) {
    let Some(scale) = Scale::of(r) else {
        out.push_str(
            "<p class=\"no-timeline\">No pod ran and nothing happened in this case.</p>\n",
        );
        return;
    };
    let rows = 2 + r.pods.iter().map(|p| 1 + p.containers.len()).sum::<usize>();
    let height = AXIS + rows as f64 * ROW + 4.0;
    let bottom = height - 2.0;
    let _ = writeln!(
        out,
        "<svg class=\"timeline\" viewBox=\"0 0 {WIDTH} {height}\" \
         role=\"img\" aria-label=\"timeline of {}\">",
        esc(&r.title())
    );
    axis(&scale, bottom, out);
    let mut y = AXIS;
    label(y, "faults", "lane-label", out);
    faults(&scale, &r.events, y, bottom, out);
    y += ROW;
    label(y, "store (backups)", "lane-label", out);
    backups(&scale, &r.events, y, out);
    for pod in &r.pods {
        y += ROW;
        pod_life(&scale, pod, &r.events, y, out);
        for container in &pod.containers {
            y += ROW;
            let kind = container
                .part
                .map_or(container.role.as_str(), |p| p.as_str());
            label(
                y,
                &format!("{} ({kind})", container.name),
                "lane-label",
                out,
            );
            if container.runs.is_empty() {
                let why = container.waiting.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "<text class=\"tick\" x=\"{X0:.1}\" y=\"{:.1}\">never started{}{}</text>",
                    y + 14.0,
                    if why.is_empty() { "" } else { ": " },
                    esc(&clip(why, 120))
                );
            }
            runs(&scale, pod, &container.name, &container.runs, y, out);
        }
    }
    out.push_str("</svg>\n");
}

/// Maps times onto the plot.
struct Scale {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    /// The case's own end (its start plus its duration).
    case_end: Option<DateTime<Utc>>,
}

impl Scale {
    /// The span of everything in `r`; `None` when there is nothing to draw.
    fn of(r: &ScenarioResult) -> Option<Scale> {
        if r.pods.is_empty() && r.events.is_empty() {
            return None;
        }
        let case_end = r
            .started_at
            .map(|s| s + chrono::Duration::milliseconds(r.duration_ms as i64));
        let mut times: Vec<DateTime<Utc>> = r.started_at.into_iter().chain(case_end).collect();
        times.extend(r.events.iter().map(|e| e.at));
        for pod in &r.pods {
            times.extend([pod.created_at, pod.end()]);
            for run in pod.containers.iter().flat_map(|c| &c.runs) {
                times.extend(std::iter::once(run.started_at).chain(run.finished_at));
            }
        }
        let start = *times.iter().min()?;
        let mut end = *times.iter().max()?;
        if end <= start {
            end = start + chrono::Duration::seconds(1);
        }
        Some(Scale {
            start,
            end,
            case_end,
        })
    }

    fn span_ms(&self) -> f64 {
        (self.end - self.start).num_milliseconds() as f64
    }

    fn x(&self, t: DateTime<Utc>) -> f64 {
        let ms = (t - self.start).num_milliseconds() as f64;
        X0 + (ms / self.span_ms()).clamp(0.0, 1.0) * (X1 - X0)
    }

    /// Seconds from the start, for labels.
    fn offset(&self, t: DateTime<Utc>) -> String {
        format!(
            "+{:.2}s",
            (t - self.start).num_milliseconds() as f64 / 1000.0
        )
    }
}

/// Ticks every round number of seconds (at most about ten), with grid lines down to `bottom`.
fn axis(scale: &Scale, bottom: f64, out: &mut String) {
    let span = scale.span_ms() / 1000.0;
    let step = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ]
    .into_iter()
    .find(|s| span / s <= 10.0)
    .unwrap_or(1200.0);
    let mut k = 0.0;
    while k * step <= span + 1e-9 {
        let x = X0 + (k * step / span) * (X1 - X0);
        let text = if step < 1.0 {
            format!("{:.1}s", k * step)
        } else {
            format!("{:.0}s", k * step)
        };
        let _ = writeln!(
            out,
            "<line class=\"axis\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
             <text class=\"tick\" x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\">{text}</text>",
            AXIS - 4.0
        );
        k += 1.0;
    }
    if let Some(end) = scale.case_end {
        let x = scale.x(end);
        let _ = writeln!(
            out,
            "<line class=\"end-line\" x1=\"{x:.1}\" y1=\"{AXIS:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\">\
             <title>the case ended {}</title></line>",
            stamp(end)
        );
    }
}

fn label(y: f64, text: &str, class: &str, out: &mut String) {
    let _ = writeln!(
        out,
        "<text class=\"{class}\" x=\"4\" y=\"{:.1}\"><title>{}</title>{}</text>",
        y + 14.0,
        esc(text),
        esc(&clip(text, 36))
    );
}

/// Red triangles in the faults lane, a dashed line through every lane, the fault in words
/// beside each where it fits before the next.
fn faults(scale: &Scale, events: &[CaseEvent], y: f64, bottom: f64, out: &mut String) {
    let faults: Vec<&CaseEvent> = events
        .iter()
        .filter(|e| e.kind == EventKind::Fault)
        .collect();
    for (i, e) in faults.iter().enumerate() {
        let x = scale.x(e.at);
        let room = faults
            .get(i + 1)
            .map_or(X1 + 10.0 - x, |next| scale.x(next.at) - x)
            - 10.0;
        let chars = (room / CHAR).floor().max(0.0) as usize;
        let _ = writeln!(
            out,
            "<line class=\"fault-line\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\"/>\
             <polygon class=\"fault\" data-at=\"{}\" points=\"{:.1},{:.1} {:.1},{:.1} {x:.1},{:.1}\">\
             <title>fault {} at {} ({}): {}</title></polygon>",
            y + 4.0,
            stamp(e.at),
            x - 5.0,
            y + 4.0,
            x + 5.0,
            y + 4.0,
            y + 13.0,
            i + 1,
            stamp(e.at),
            scale.offset(e.at),
            esc(&e.what)
        );
        let text = if chars >= 4 {
            clip(&e.what, chars)
        } else {
            (i + 1).to_string()
        };
        let _ = writeln!(
            out,
            "<text class=\"fault-text\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 7.0,
            y + 13.0,
            esc(&text)
        );
    }
}

/// Backups the workload took (dots) and the harness seeded (squares).
fn backups(scale: &Scale, events: &[CaseEvent], y: f64, out: &mut String) {
    for e in events {
        let x = scale.x(e.at);
        match e.kind {
            EventKind::Backup => {
                let seen = e
                    .seen_at
                    .map(|s| format!(", first listed {}", stamp(s)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "<circle class=\"backup\" data-at=\"{}\" cx=\"{x:.1}\" cy=\"{:.1}\" r=\"5\">\
                     <title>backup {} taken {} ({}){seen}</title></circle>",
                    stamp(e.at),
                    y + 10.0,
                    esc(&e.what),
                    stamp(e.at),
                    scale.offset(e.at)
                );
            }
            EventKind::Seeded => {
                let _ = writeln!(
                    out,
                    "<rect class=\"seeded\" data-at=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"8\" height=\"8\">\
                     <title>backup {} seeded by the harness at {} ({})</title></rect>",
                    stamp(e.at),
                    x - 4.0,
                    y + 6.0,
                    esc(&e.what),
                    stamp(e.at),
                    scale.offset(e.at)
                );
            }
            EventKind::Fault | EventKind::Ready => {}
        }
    }
}

/// The pod's row: its name, its life, its deletion and when it was seen ready.
fn pod_life(scale: &Scale, pod: &PodTrace, events: &[CaseEvent], y: f64, out: &mut String) {
    label(y, &format!("pod {}", pod.pod), "pod-label", out);
    let (x1, x2) = (scale.x(pod.created_at), scale.x(pod.end()));
    let _ = writeln!(
        out,
        "<line class=\"pod-life\" x1=\"{x1:.1}\" y1=\"{0:.1}\" x2=\"{x2:.1}\" y2=\"{0:.1}\">\
         <title>pod {1} (uid {2}) created {3}; {4} when last seen {5}{6}</title></line>",
        y + 10.0,
        esc(&pod.pod),
        esc(&pod.uid),
        stamp(pod.created_at),
        esc(&pod.phase),
        stamp(pod.observed_at),
        pod.message
            .as_deref()
            .map(|m| format!(": {}", esc(m)))
            .unwrap_or_default()
    );
    if let Some(deleted) = pod.deleted_at {
        let x = scale.x(deleted);
        let _ = writeln!(
            out,
            "<line class=\"deleted\" x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\">\
             <title>deletion requested {}</title></line>",
            y + 3.0,
            y + 17.0,
            stamp(deleted)
        );
    }
    for e in events
        .iter()
        .filter(|e| e.kind == EventKind::Ready && e.what == pod.pod)
    {
        let x = scale.x(e.at);
        let _ = writeln!(
            out,
            "<polygon class=\"ready\" data-at=\"{}\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\">\
             <title>ready at {} ({})</title></polygon>",
            stamp(e.at),
            x,
            y + 4.0,
            x + 6.0,
            y + 10.0,
            x,
            y + 16.0,
            x - 6.0,
            y + 10.0,
            stamp(e.at),
            scale.offset(e.at)
        );
    }
}

/// One bar per run, labelled with its exit code where there is room.
fn runs(scale: &Scale, pod: &PodTrace, name: &str, runs: &[RunTrace], y: f64, out: &mut String) {
    for (i, run) in runs.iter().enumerate() {
        let x1 = scale.x(run.started_at);
        let end = run
            .finished_at
            .unwrap_or_else(|| pod.end().max(run.started_at));
        let x2 = scale.x(end).max(x1 + 2.0);
        let class = match (run.finished_at, run.reason.as_deref(), run.exit_code) {
            (None, ..) => "running",
            (_, Some("Completed"), _) | (_, None, Some(0)) => "ok",
            (_, Some("Killed"), _) => "killed",
            (_, Some("StartError"), _) => "start-error",
            _ => "err",
        };
        let text = match run.exit_code {
            Some(code) => format!("exit {code}"),
            None => "running".to_owned(),
        };
        let text = if run.restart_count > 0 {
            format!("#{} {text}", run.restart_count)
        } else {
            text
        };
        let _ = writeln!(
            out,
            "<rect class=\"run {class}\" data-container=\"{}\" data-run=\"{}\" x=\"{x1:.1}\" \
             y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} run {}: {} → {}{}{}</title></rect>",
            esc(name),
            run.restart_count,
            y + 3.0,
            x2 - x1,
            ROW - 6.0,
            esc(name),
            run.restart_count,
            stamp(run.started_at),
            run.finished_at.map_or_else(
                || format!("running when last seen {}", stamp(pod.observed_at)),
                stamp
            ),
            run.exit_code
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default(),
            match (&run.reason, &run.message) {
                (Some(reason), Some(m)) => format!(" ({}: {})", esc(reason), esc(m)),
                (Some(reason), None) => format!(" ({})", esc(reason)),
                (None, _) => String::new(),
            }
        );
        let width = text.chars().count() as f64 * CHAR + 6.0;
        let room_after = runs
            .get(i + 1)
            .map_or(X1 + 40.0 - x2, |next| scale.x(next.started_at) - x2);
        if x2 - x1 >= width {
            let _ = writeln!(
                out,
                "<text class=\"run-text\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x1 + 3.0,
                y + 14.0,
                esc(&text)
            );
        } else if room_after >= width {
            let _ = writeln!(
                out,
                "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                x2 + 3.0,
                y + 14.0,
                esc(&text)
            );
        }
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
fn clip(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("");
    if first.chars().count() <= max && first.len() == text.len() {
        return first.to_owned();
    }
    let mut cut: String = first.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
