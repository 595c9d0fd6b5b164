//! How the maintenance container backs up: on a schedule, or continuously within a lag.

use super::ScheduleKnob;
use super::document;

/// How the maintenance container backs up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Maintenance {
    /// At the times its schedule knob names (`RUNAT=HH:MM:SS[,…]`).
    Scheduled(ScheduleKnob),
    /// Every change streamed to the store (Litestream): a write is in the store within `lag`.
    Continuous {
        /// The longest a committed write may take to reach the store.
        lag: std::time::Duration,
    },
}

impl Maintenance {
    /// The schedule knob, when backups follow a schedule.
    pub fn schedule(&self) -> Option<&ScheduleKnob> {
        match self {
            Maintenance::Scheduled(knob) => Some(knob),
            Maintenance::Continuous { .. } => None,
        }
    }
}

/// `maintenance` and `schedule`: a scheduled workload names its schedule knob, a continuous one
/// its lag and no schedule.
pub(super) fn from_document(
    maintenance: Option<document::V2Maintenance>,
    schedule: Option<ScheduleKnob>,
) -> Result<Maintenance, (&'static str, String)> {
    let kind = maintenance
        .as_ref()
        .map_or("scheduled", |m| m.kind.as_str());
    match (kind, schedule) {
        ("scheduled", Some(knob)) => {
            if maintenance.and_then(|m| m.lag).is_some() {
                return Err((
                    "maintenance.lag",
                    "only a `continuous` workload has a lag; remove it, or set `kind: continuous`".into(),
                ));
            }
            Ok(Maintenance::Scheduled(knob))
        }
        ("scheduled", None) => Err((
            "schedule",
            "a scheduled workload names its schedule knob, e.g. `schedule: {env: RUNAT}` (or set `maintenance: {kind: continuous, lag: 10s}`)".into(),
        )),
        ("continuous", Some(_)) => Err((
            "schedule",
            "a continuous workload has no schedule; remove `schedule`".into(),
        )),
        ("continuous", None) => {
            let Some(lag) = maintenance.and_then(|m| m.lag) else {
                return Err((
                    "maintenance.lag",
                    "a continuous workload names the longest a write may take to reach the store, e.g. `lag: 10s`".into(),
                ));
            };
            match crate::duration::parse_duration(&lag) {
                Ok(lag) if !lag.is_zero() => Ok(Maintenance::Continuous { lag }),
                Ok(_) => Err(("maintenance.lag", "the lag must be more than zero".into())),
                Err(problem) => Err(("maintenance.lag", problem)),
            }
        }
        (other, _) => Err((
            "maintenance.kind",
            format!("unknown kind `{other}`; use `scheduled` or `continuous`"),
        )),
    }
}
