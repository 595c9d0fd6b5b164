//! Progress on stderr while cases run: a line as each case ends (aligned columns, the outcome in
//! colour on a terminal), a line as each starts on a slow runtime, and every
//! [`STILL_RUNNING_EVERY`] the cases that have run longer than that.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::report::ScenarioResult;

use crate::note;
use crate::plan::Case;

/// How often the cases running longer than this are listed.
pub const STILL_RUNNING_EVERY: Duration = Duration::from_secs(15);

/// What the terminal shows while cases run.
pub struct Progress {
    total: usize,
    announce_starts: bool,
    colour: bool,
    w_title: usize,
    w_subject: usize,
    repeat: u32,
    running: Mutex<BTreeMap<usize, (String, Instant)>>,
    done: Mutex<usize>,
}

impl Progress {
    /// Progress for `cases` (each run `repeat` times); `announce_starts` on runtimes where a case
    /// takes a while to show a result; outcomes coloured when `colour`.
    pub fn new(cases: &[Case], repeat: u32, announce_starts: bool, colour: bool) -> Self {
        let w_title = cases
            .iter()
            .map(|c| c.requirement.id.len() + 1 + c.requirement.name.len())
            .max()
            .unwrap_or(0);
        let w_subject = cases
            .iter()
            .map(|c| c.subject.name().len() + 1 + c.backend.as_str().len())
            .max()
            .unwrap_or(0);
        Progress {
            total: cases.len() * repeat as usize,
            announce_starts,
            colour,
            w_title,
            w_subject,
            repeat,
            running: Mutex::default(),
            done: Mutex::new(0),
        }
    }

    fn label(&self, case: &Case, iteration: u32) -> String {
        let mut label = format!(
            "{:<w$}  {:<s$}",
            format!("{} {}", case.requirement.id, case.requirement.name),
            format!("{}/{}", case.subject.name(), case.backend),
            w = self.w_title,
            s = self.w_subject
        );
        if self.repeat > 1 {
            label.push_str(&format!("  #{iteration}"));
        }
        label
    }

    /// Case number `index` (run `iteration`) starts.
    pub fn started(&self, index: usize, case: &Case, iteration: u32) {
        let label = self.label(case, iteration);
        if self.announce_starts {
            let width = self.total.to_string().len();
            note!(
                "[{:>width$}/{}] {:<11} {}",
                "",
                self.total,
                "started",
                label.trim_end()
            );
        }
        self.running
            .lock()
            .expect("not poisoned")
            .insert(index, (label, Instant::now()));
    }

    /// Case number `index` ended with `result`.
    pub fn finished(&self, index: usize, result: &ScenarioResult) {
        let label = match self.running.lock().expect("not poisoned").remove(&index) {
            Some((label, _)) => label,
            None => format!(
                "{:<w$}  {:<s$}",
                result.title(),
                format!("{}/{}", result.subject, result.backend),
                w = self.w_title,
                s = self.w_subject
            ),
        };
        let n = {
            let mut done = self.done.lock().expect("not poisoned");
            *done += 1;
            *done
        };
        let width = self.total.to_string().len();
        let outcome = result
            .outcome
            .paint(&format!("{:<11}", result.outcome.as_str()), self.colour);
        let line = format!(
            "[{n:>width$}/{}] {outcome} {label}  {:>6.1}s  {}",
            self.total,
            result.duration_ms as f64 / 1000.0,
            result.message.lines().next().unwrap_or("")
        );
        note!("{}", line.trim_end());
    }

    /// The cases that have run longer than [`STILL_RUNNING_EVERY`], longest first, as one line;
    /// `None` when there is none.
    pub fn still_running(&self) -> Option<String> {
        let running = self.running.lock().expect("not poisoned");
        let mut long: Vec<(Duration, String)> = running
            .values()
            .map(|(label, since)| (since.elapsed(), label.clone()))
            .filter(|(elapsed, _)| *elapsed >= STILL_RUNNING_EVERY)
            .collect();
        if long.is_empty() {
            return None;
        }
        long.sort_by_key(|(elapsed, _)| std::cmp::Reverse(*elapsed));
        let list: Vec<String> = long
            .iter()
            .map(|(elapsed, label)| {
                let words: Vec<&str> = label.split_whitespace().collect();
                format!("{} ({}s)", words.join(" "), elapsed.as_secs())
            })
            .collect();
        Some(format!(
            "phasecheck: still running ({}): {}",
            list.len(),
            list.join(", ")
        ))
    }

    /// Prints [`Progress::still_running`] every [`STILL_RUNNING_EVERY`], forever.
    pub async fn tick(&self) {
        let mut interval = tokio::time::interval(STILL_RUNNING_EVERY);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            if let Some(line) = self.still_running() {
                note!("{line}");
            }
        }
    }
}
