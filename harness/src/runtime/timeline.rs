//! A pod's history: every run of every container, with timestamps.
//!
//! Scenarios assert ordering on it (every run-phase container started after the restore
//! finished) and put [`Timeline::render`] into failure messages. Timestamps are UTC with
//! millisecond precision; two events in the same millisecond compare equal.

use std::fmt::{self, Write as _};

use chrono::{DateTime, SecondsFormat, Utc};

use super::PodPhase;

/// What part a container plays in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContainerRole {
    /// An init container: runs to completion before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`: started, not awaited, kept running.
    NativeSidecar,
    /// A regular container (`spec.containers`).
    App,
}

impl ContainerRole {
    /// A short lower-case name for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerRole::Init => "init",
            ContainerRole::NativeSidecar => "sidecar",
            ContainerRole::App => "app",
        }
    }
}

impl fmt::Display for ContainerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminationReason {
    /// Exit code 0.
    Completed,
    /// A non-zero exit code.
    Error,
    /// Ended by a signal (a kill, a failed liveness probe, pod deletion).
    Killed,
    /// The process could not be started at all (exit code 128, like Kubernetes' `StartError`).
    StartError,
}

impl TerminationReason {
    /// The reason's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Completed => "Completed",
            TerminationReason::Error => "Error",
            TerminationReason::Killed => "Killed",
            TerminationReason::StartError => "StartError",
        }
    }
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a container: one process from start to exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRun {
    /// How many restarts preceded this run (0 for the first).
    pub restart_count: u32,
    /// When the process was started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it runs.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its exit code; a signal `n` is `128 + n`. `None` while it runs.
    pub exit_code: Option<i32>,
    /// Why it ended. `None` while it runs.
    pub reason: Option<TerminationReason>,
    /// More on the end, e.g. which probe failed or why the start failed.
    pub message: Option<String>,
}

impl ContainerRun {
    /// Whether the process still runs.
    pub fn is_running(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// Why a container is not running now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    /// `CreateContainerConfigError`, `CrashLoopBackOff`, `PodInitializing`, …
    pub reason: String,
    /// Details, e.g. the missing Secret key.
    pub message: String,
}

/// One container's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerTimeline {
    /// The container's name.
    pub name: String,
    /// Its role.
    pub role: ContainerRole,
    /// Every run, oldest first.
    pub runs: Vec<ContainerRun>,
    /// Why it is not running now, if it is not.
    pub waiting: Option<Waiting>,
}

impl ContainerTimeline {
    /// How often the container was restarted.
    pub fn restart_count(&self) -> u32 {
        self.runs.last().map_or(0, |r| r.restart_count)
    }
}

/// A pod's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    /// The pod's name.
    pub pod: String,
    /// The pod's UID.
    pub uid: String,
    /// The phase when the timeline was taken.
    pub phase: PodPhase,
    /// Whether the pod was ready when the timeline was taken.
    pub ready: bool,
    /// When the pod was created.
    pub created_at: DateTime<Utc>,
    /// When its deletion was requested.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Why the pod is stuck or failed, if it is (e.g. a volume's Secret is missing).
    pub message: Option<String>,
    /// Init containers in spec order, then regular containers in spec order.
    pub containers: Vec<ContainerTimeline>,
}

impl Timeline {
    /// The container named `name`.
    pub fn container(&self, name: &str) -> Option<&ContainerTimeline> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// The runs of container `name`, oldest first; empty if it never ran or does not exist.
    pub fn runs(&self, name: &str) -> &[ContainerRun] {
        self.container(name).map_or(&[], |c| c.runs.as_slice())
    }

    /// The earliest start of any container with `role`.
    pub fn first_start(&self, role: ContainerRole) -> Option<DateTime<Utc>> {
        self.with_role(role).map(|r| r.started_at).min()
    }

    /// The latest finish of any container with `role`.
    pub fn last_finish(&self, role: ContainerRole) -> Option<DateTime<Utc>> {
        self.with_role(role).filter_map(|r| r.finished_at).max()
    }

    fn with_role(&self, role: ContainerRole) -> impl Iterator<Item = &ContainerRun> {
        self.containers
            .iter()
            .filter(move |c| c.role == role)
            .flat_map(|c| &c.runs)
    }

    /// A table for humans, one line per run, for failure messages.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "pod {} (uid {}) {}{}, created {}",
            self.pod,
            self.uid,
            self.phase,
            if self.ready { ", ready" } else { "" },
            stamp(self.created_at)
        );
        if let Some(at) = self.deleted_at {
            let _ = write!(out, ", deletion requested {}", stamp(at));
        }
        out.push('\n');
        if let Some(message) = &self.message {
            let _ = writeln!(out, "  {message}");
        }
        let mut rows = vec![[
            "CONTAINER".to_owned(),
            "ROLE".to_owned(),
            "RUN".to_owned(),
            "STARTED".to_owned(),
            "FINISHED".to_owned(),
            "EXIT".to_owned(),
            "REASON".to_owned(),
        ]];
        let mut notes = Vec::new();
        for c in &self.containers {
            if c.runs.is_empty() {
                rows.push([
                    c.name.clone(),
                    c.role.to_string(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "never started".into(),
                ]);
            }
            for run in &c.runs {
                rows.push([
                    c.name.clone(),
                    c.role.to_string(),
                    run.restart_count.to_string(),
                    stamp(run.started_at),
                    run.finished_at.map_or("running".into(), stamp),
                    run.exit_code.map_or("-".into(), |e| e.to_string()),
                    run.reason.map_or("-".into(), |r| r.to_string()),
                ]);
                if let Some(message) = &run.message {
                    notes.push(format!("{} run {}: {message}", c.name, run.restart_count));
                }
            }
            if let Some(w) = &c.waiting {
                notes.push(format!("{} waiting: {}: {}", c.name, w.reason, w.message));
            }
        }
        let widths: Vec<usize> = (0..7)
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for row in rows {
            out.push_str("  ");
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    out.push_str(cell);
                } else {
                    let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
                }
            }
            out.push('\n');
        }
        for note in notes {
            let _ = writeln!(out, "  {note}");
        }
        out
    }
}

impl fmt::Display for Timeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn run(restart: u32, start: i64, end: Option<(i64, i32)>) -> ContainerRun {
        ContainerRun {
            restart_count: restart,
            started_at: at(start),
            finished_at: end.map(|(t, _)| at(t)),
            exit_code: end.map(|(_, c)| c),
            reason: end.map(|(_, c)| {
                if c == 0 {
                    TerminationReason::Completed
                } else {
                    TerminationReason::Error
                }
            }),
            message: None,
        }
    }

    fn sample() -> Timeline {
        Timeline {
            pod: "p".into(),
            uid: "u".into(),
            phase: PodPhase::Running,
            ready: true,
            created_at: at(0),
            deleted_at: None,
            message: None,
            containers: vec![
                ContainerTimeline {
                    name: "restore".into(),
                    role: ContainerRole::Init,
                    runs: vec![run(0, 10, Some((20, 1))), run(1, 30, Some((40, 0)))],
                    waiting: None,
                },
                ContainerTimeline {
                    name: "app".into(),
                    role: ContainerRole::App,
                    runs: vec![run(0, 50, None)],
                    waiting: None,
                },
            ],
        }
    }

    #[test]
    fn role_helpers_find_the_first_start_and_last_finish() {
        let t = sample();
        assert_eq!(t.first_start(ContainerRole::Init), Some(at(10)));
        assert_eq!(t.last_finish(ContainerRole::Init), Some(at(40)));
        assert_eq!(t.first_start(ContainerRole::App), Some(at(50)));
        assert_eq!(t.last_finish(ContainerRole::App), None);
        assert_eq!(t.runs("restore").len(), 2);
        assert!(t.runs("nope").is_empty());
        assert_eq!(t.container("restore").unwrap().restart_count(), 1);
    }

    #[test]
    fn render_lists_every_run_with_millisecond_stamps() {
        let text = sample().render();
        assert!(
            text.contains("restore    init  1    2023-11-14T22:13:20.030Z"),
            "{text}"
        );
        assert!(text.contains("running"), "{text}");
        assert_eq!(text.lines().count(), 5, "{text}");
    }
}
