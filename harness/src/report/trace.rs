//! What happened in one case, as data other tools can draw: every pod's container runs
//! ([`PodTrace`]) and the harness's own events ([`CaseEvent`]: faults injected, backups that
//! appeared in the store, backups seeded, pods that became ready).
//!
//! `report.json` carries them per case as `pods` and `events`; `report.html` draws them. The
//! shape is the runtime's [`Timeline`] made plain (roles and reasons as words) plus the part each
//! container plays for the subject (`restore`, `run`, `maintenance`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runtime::timeline::Timeline;

/// The part a container plays in a phased pod, as the subject's profile names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Part {
    /// Restores the data before the run phase (an init container).
    Restore,
    /// The application.
    Run,
    /// Takes the scheduled backups.
    Maintenance,
}

impl Part {
    /// The part's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Restore => "restore",
            Part::Run => "run",
            Part::Maintenance => "maintenance",
        }
    }
}

/// One pod's history as last seen by the harness.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodTrace {
    /// The pod's name.
    pub pod: String,
    /// Its UID (two pods of one name differ here).
    pub uid: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its deletion was requested (or the workload scaled to zero), if it was.
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    /// Its phase when last seen (`Running`, `Initializing`, …).
    pub phase: String,
    /// Whether it was ready when last seen.
    pub ready: bool,
    /// Why it was stuck or failed, if it was.
    #[serde(default)]
    pub message: Option<String>,
    /// When the harness last saw it: a run without an end was still running then.
    pub observed_at: DateTime<Utc>,
    /// Init containers in spec order, then regular containers in spec order.
    pub containers: Vec<ContainerTrace>,
}

/// One container's runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerTrace {
    /// The container's name.
    pub name: String,
    /// Its place in the pod spec: `init`, `sidecar` (a native sidecar) or `app`.
    pub role: String,
    /// The part it plays for the subject, when the profile names it.
    #[serde(default)]
    pub part: Option<Part>,
    /// Every run, oldest first (a cluster keeps only the last two).
    pub runs: Vec<RunTrace>,
    /// Why it was not running when last seen (`CrashLoopBackOff: …`), if it was not.
    #[serde(default)]
    pub waiting: Option<String>,
}

/// One run of a container: one process from start to exit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunTrace {
    /// Restarts before this run (0 for the first).
    pub restart_count: u32,
    /// When the process started.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while it ran when last seen.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its exit code (a signal `n` is `128 + n`).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why it ended: `Completed`, `Error`, `Killed`, `StartError`.
    #[serde(default)]
    pub reason: Option<String>,
    /// More on the end (which probe failed, why the start failed).
    #[serde(default)]
    pub message: Option<String>,
}

impl PodTrace {
    /// The trace of `timeline`, seen at `observed_at`; `part` names each container's part.
    pub fn from_timeline(
        timeline: &Timeline,
        observed_at: DateTime<Utc>,
        part: impl Fn(&str) -> Option<Part>,
    ) -> Self {
        PodTrace {
            pod: timeline.pod.clone(),
            uid: timeline.uid.clone(),
            created_at: timeline.created_at,
            deleted_at: timeline.deleted_at,
            phase: timeline.phase.to_string(),
            ready: timeline.ready,
            message: timeline.message.clone(),
            observed_at,
            containers: timeline
                .containers
                .iter()
                .map(|c| ContainerTrace {
                    name: c.name.clone(),
                    role: c.role.to_string(),
                    part: part(&c.name),
                    runs: c
                        .runs
                        .iter()
                        .map(|r| RunTrace {
                            restart_count: r.restart_count,
                            started_at: r.started_at,
                            finished_at: r.finished_at,
                            exit_code: r.exit_code,
                            reason: r.reason.map(|r| r.to_string()),
                            message: r.message.clone(),
                        })
                        .collect(),
                    waiting: c
                        .waiting
                        .as_ref()
                        .map(|w| format!("{}: {}", w.reason, w.message)),
                })
                .collect(),
        }
    }

    /// Where the pod's life ends on a drawing: its deletion, else when it was last seen.
    pub fn end(&self) -> DateTime<Utc> {
        self.deleted_at
            .map_or(self.observed_at, |d| d.max(self.created_at))
    }
}

/// What kind of thing the harness saw or did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A fault was injected (`what`: the fault in words).
    Fault,
    /// A backup the workload took appeared in the store (`what`: its ID; `at`: when it was
    /// taken, as the store lists it; `seen_at`: when the harness first listed it).
    Backup,
    /// The harness seeded a backup into the store (`what`: its ID).
    Seeded,
    /// A pod became ready (`what`: the pod's name; `at`: when the harness's wait saw it).
    Ready,
}

impl EventKind {
    /// The kind's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Fault => "fault",
            EventKind::Backup => "backup",
            EventKind::Seeded => "seeded",
            EventKind::Ready => "ready",
        }
    }
}

/// One thing the harness did or saw during a case, with its time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What kind of event.
    pub kind: EventKind,
    /// The fault in words, the backup's ID, the pod's name.
    pub what: String,
    /// For a [`EventKind::Backup`]: when the harness first saw it in the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<DateTime<Utc>>,
}

impl CaseEvent {
    /// An event of `kind` at `at`.
    pub fn new(at: DateTime<Utc>, kind: EventKind, what: impl Into<String>) -> Self {
        CaseEvent {
            at,
            kind,
            what: what.into(),
            seen_at: None,
        }
    }

    /// The same event, first seen at `seen_at`.
    pub fn with_seen_at(mut self, seen_at: DateTime<Utc>) -> Self {
        self.seen_at = Some(seen_at);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::PodPhase;
    use crate::runtime::timeline::{
        ContainerRole, ContainerRun, ContainerTimeline, TerminationReason, Waiting,
    };

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_timeline_becomes_a_trace_with_words_and_parts() {
        let timeline = Timeline {
            pod: "p".into(),
            uid: "u".into(),
            phase: PodPhase::Initializing,
            ready: false,
            created_at: at(0),
            deleted_at: None,
            message: None,
            containers: vec![ContainerTimeline {
                name: "restore".into(),
                role: ContainerRole::Init,
                runs: vec![ContainerRun {
                    restart_count: 0,
                    started_at: at(10),
                    finished_at: Some(at(20)),
                    exit_code: Some(1),
                    reason: Some(TerminationReason::Error),
                    message: None,
                }],
                waiting: Some(Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: "back-off 200ms".into(),
                }),
            }],
        };
        let trace = PodTrace::from_timeline(&timeline, at(30), |name| {
            (name == "restore").then_some(Part::Restore)
        });
        assert_eq!(trace.end(), at(30));
        let json = serde_json::to_value(&trace).unwrap();
        assert_eq!(json["phase"], "Initializing");
        assert_eq!(json["containers"][0]["role"], "init");
        assert_eq!(json["containers"][0]["part"], "restore");
        assert_eq!(json["containers"][0]["runs"][0]["reason"], "Error");
        assert_eq!(
            json["containers"][0]["waiting"],
            "CrashLoopBackOff: back-off 200ms"
        );
        let back: PodTrace = serde_json::from_value(json).unwrap();
        assert_eq!(back, trace);
    }

    #[test]
    fn events_serialise_with_their_kind_as_a_word() {
        let event = CaseEvent::new(at(5), EventKind::Backup, "20231114-221320").with_seen_at(at(7));
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["kind"], "backup");
        assert!(json["seen_at"].is_string());
        let fault = serde_json::to_value(CaseEvent::new(at(1), EventKind::Fault, "x")).unwrap();
        assert!(fault.get("seen_at").is_none());
    }
}
