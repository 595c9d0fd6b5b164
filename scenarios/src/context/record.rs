//! A case's record of what happened: faults injected, backups seeded and seen in the store, pods
//! seen ready, and the timelines of pods before they went away. It outlives the scenario (a case
//! that timed out or was interrupted keeps what was recorded), and becomes the case's `pods` and
//! `events` in the report, redacted like everything else there. It also keeps the harness's own
//! share of the case's time ([`Recorder::timed`]).

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use harness::formats::BackupInfo;
use harness::report::{CaseEvent, EventKind, HarnessShare, Phase, PodTrace};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record of one case; clones share it.
#[derive(Clone, Debug, Default)]
pub struct Recorder(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    events: Vec<CaseEvent>,
    /// The last trace of every pod seen, by UID, in the order first seen.
    pods: Vec<PodTrace>,
    /// Backups already recorded (seeded or seen).
    backups: BTreeSet<String>,
    /// The harness's own work so far.
    share: HarnessShare,
}

impl Recorder {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("not poisoned")
    }

    /// Runs `work` and counts its wall time as the harness's own work of `phase`.
    pub async fn timed<T>(&self, phase: Phase, work: impl Future<Output = T>) -> T {
        let start = std::time::Instant::now();
        let out = work.await;
        self.lock().share.add(phase, start.elapsed());
        out
    }

    /// The harness's own work so far.
    pub fn share(&self) -> HarnessShare {
        self.lock().share
    }

    /// Records `what` of `kind` at `at`.
    pub fn event(&self, at: DateTime<Utc>, kind: EventKind, what: impl Into<String>) {
        self.lock().events.push(CaseEvent::new(at, kind, what));
    }

    /// Records a backup the harness seeded now.
    pub fn seeded(&self, id: &str) {
        let mut inner = self.lock();
        inner.backups.insert(id.to_owned());
        inner
            .events
            .push(CaseEvent::new(Utc::now(), EventKind::Seeded, id));
    }

    /// Records every backup in `listed` not seen before (nor seeded) as the workload's: at the
    /// time it was taken, first listed now.
    pub fn listed(&self, listed: &[BackupInfo]) {
        let now = Utc::now();
        let mut inner = self.lock();
        for backup in listed {
            if inner.backups.insert(backup.id.clone()) {
                inner.events.push(
                    CaseEvent::new(backup.taken, EventKind::Backup, &backup.id).with_seen_at(now),
                );
            }
        }
    }

    /// Keeps `trace` as the latest of its pod.
    pub fn pod(&self, trace: PodTrace) {
        let mut inner = self.lock();
        match inner.pods.iter_mut().find(|p| p.uid == trace.uid) {
            Some(known) => *known = trace,
            None => inner.pods.push(trace),
        }
    }

    /// Notes that the pods with `uids` were removed at `at` (deleted, or scaled away), unless
    /// their trace already says when.
    pub fn removed(&self, uids: &[String], at: DateTime<Utc>) {
        for pod in self
            .lock()
            .pods
            .iter_mut()
            .filter(|p| uids.contains(&p.uid) && p.deleted_at.is_none())
        {
            pod.deleted_at = Some(at);
        }
    }

    /// The record with the pods still there at the end (`live`, newer than what was kept),
    /// events oldest first, every string redacted with `redact`.
    pub fn finish(
        &self,
        live: Vec<PodTrace>,
        redact: impl Fn(&str) -> String,
    ) -> (Vec<PodTrace>, Vec<CaseEvent>) {
        for trace in live {
            self.pod(trace);
        }
        let inner = self.lock();
        let mut pods = inner.pods.clone();
        pods.sort_by_key(|p| p.created_at);
        let mut events = inner.events.clone();
        events.sort_by_key(|e| e.at);
        (redact_all(pods, &redact), redact_all(events, &redact))
    }
}

/// `items` with `redact` applied to every string in them.
fn redact_all<T: Serialize + DeserializeOwned>(
    items: Vec<T>,
    redact: &impl Fn(&str) -> String,
) -> Vec<T> {
    fn walk(value: &mut serde_json::Value, redact: &impl Fn(&str) -> String) {
        match value {
            serde_json::Value::String(s) => *s = redact(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, redact)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, redact)),
            _ => {}
        }
    }
    // NB: times and kinds read back unchanged unless a secret is spelt inside one; such an
    // item is dropped rather than shown.
    items
        .into_iter()
        .filter_map(|item| {
            let mut json = serde_json::to_value(&item).ok()?;
            walk(&mut json, redact);
            serde_json::from_value(json).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn pod(uid: &str, message: Option<&str>) -> PodTrace {
        PodTrace {
            pod: "p".into(),
            uid: uid.into(),
            created_at: at(0),
            deleted_at: None,
            phase: "Running".into(),
            ready: true,
            message: message.map(str::to_owned),
            observed_at: at(10),
            containers: Vec::new(),
        }
    }

    #[test]
    fn backups_are_recorded_once_and_seeded_ones_never_as_the_workloads() {
        let recorder = Recorder::default();
        recorder.seeded("seed-1");
        let listed = [
            BackupInfo {
                id: "seed-1".into(),
                taken: at(1),
            },
            BackupInfo {
                id: "b-2".into(),
                taken: at(2),
            },
        ];
        recorder.listed(&listed);
        recorder.listed(&listed);
        let (_, events) = recorder.finish(Vec::new(), str::to_owned);
        let kinds: Vec<(EventKind, &str)> =
            events.iter().map(|e| (e.kind, e.what.as_str())).collect();
        assert_eq!(kinds.len(), 2, "{kinds:?}");
        assert!(kinds.contains(&(EventKind::Backup, "b-2")));
        assert!(kinds.contains(&(EventKind::Seeded, "seed-1")));
    }

    #[test]
    fn removed_pods_keep_their_last_trace_and_live_ones_replace_theirs() {
        let recorder = Recorder::default();
        recorder.pod(pod("a", None));
        recorder.removed(&["a".to_owned()], at(5));
        recorder.event(at(3), EventKind::Fault, "delete the pod");
        let (pods, events) = recorder.finish(vec![pod("b", Some("key=s3cr3t"))], |s| {
            s.replace("s3cr3t", "<redacted>")
        });
        assert_eq!(pods.len(), 2);
        assert_eq!(pods[0].deleted_at, Some(at(5)));
        assert_eq!(pods[1].message.as_deref(), Some("key=<redacted>"));
        assert_eq!(events[0].what, "delete the pod");
    }
}
