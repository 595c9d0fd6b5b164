//! Continuous maintenance (`maintenance: {kind: continuous, lag}` in the profile): every write
//! through the app reaches the store within the declared lag, judged by reading the store's
//! newest backup the format's own way.

use std::time::Duration;

use chrono::{DateTime, Utc};
use harness::dataset::Dataset;
use harness::report::Phase;
use harness::runtime::Runtime;
use harness::subject::Maintenance;

use super::Scenario;
use super::store::chrono_of;
use crate::fail;
use crate::outcome::{Check, Context};

impl<R: Runtime> Scenario<'_, R> {
    /// The declared lag, when the subject's maintenance is continuous.
    pub fn replication_lag(&self) -> Option<Duration> {
        match self.subject().profile.maintenance {
            Maintenance::Continuous { lag } => Some(lag),
            Maintenance::Scheduled(_) => None,
        }
    }

    /// Waits until the store's newest backup holds every file of `written` with its bytes, taken
    /// no later than the lag after `since` (when the writes had ended, or the store came back);
    /// returns its ID. The newest backup is read (and so verified) each time the store changes.
    pub async fn wait_store_holds(&self, written: &Dataset, since: DateTime<Utc>) -> Check<String> {
        let Some(lag) = self.replication_lag() else {
            return Err(crate::outcome::Failure::error(
                "the subject's maintenance is scheduled, not continuous",
            ));
        };
        let deadline = since + chrono_of(lag);
        let give_up = deadline + chrono_of(self.pacing().completion_grace);
        let mut changes = self.store.changes();
        let mut last_read: Option<String> = None;
        let mut lacking = String::from("the store holds no backup");
        let mut looked_once_more = false;
        loop {
            let backups = self.backup_infos().await?;
            if let Some(newest) = backups.first()
                && last_read.as_ref() != Some(&newest.id)
            {
                last_read = Some(newest.id.clone());
                let held = self
                    .recorder
                    .timed(Phase::Store, self.store.verify(&newest.id))
                    .await;
                let held = match held {
                    Err(harness::backups::Error::Format(e)) if e.is_bad_backup() => {
                        fail!("the newest backup does not verify: {e}")
                    }
                    other => other.with_context(|| format!("reading backup {}", newest.id))?,
                };
                match first_missing(written, &held) {
                    None if newest.taken <= deadline => return Ok(newest.id.clone()),
                    None => fail!(
                        "the write reached the store at {} (backup {}), {:.1} s after {since}: \
                         longer than the lag of {lag:?}",
                        newest.taken,
                        newest.id,
                        (newest.taken - since).as_seconds_f64()
                    ),
                    Some(path) => {
                        lacking = format!("the newest backup {} lacks {path:?}", newest.id);
                    }
                }
            }
            let Ok(left) = (give_up - Utc::now()).to_std() else {
                // NB: reading a backup can outlast the deadline on a busy machine; one that
                // landed meanwhile (stamped in time) is listed once more before judging.
                if !looked_once_more {
                    looked_once_more = true;
                    continue;
                }
                fail!(
                    "the write was not in the store within the lag of {lag:?} after {since}: \
                     {lacking}"
                );
            };
            changes.next(left).await;
        }
    }
}

/// The first file of `written` that `held` lacks or holds other bytes for.
fn first_missing<'d>(written: &'d Dataset, held: &Dataset) -> Option<&'d str> {
    written
        .files
        .iter()
        .find(|(path, bytes)| held.files.get(*path) != Some(*bytes))
        .map(|(path, _)| path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_holds_a_write_when_every_file_has_its_bytes() {
        let written = Dataset::generated("w", 2, 10);
        let mut held = written.merged(&Dataset::generated("other", 3, 10));
        assert_eq!(first_missing(&written, &held), None);
        let first = written.files.keys().next().unwrap().clone();
        held.files.insert(first.clone(), b"changed".to_vec());
        assert_eq!(first_missing(&written, &held), Some(first.as_str()));
        held.files.remove(&first);
        assert_eq!(first_missing(&written, &held), Some(first.as_str()));
    }
}
