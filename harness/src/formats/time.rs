//! Backup times as names: `YYYYMMDDTHHMMSS.mmmZ` (UTC, milliseconds), which sort by time.

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, Utc};

const ID_FORMAT: &str = "%Y%m%dT%H%M%S%.3fZ";

/// `t` truncated to milliseconds (what an ID keeps).
pub(crate) fn millis(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(3)
}

/// The ID of time `t`: `YYYYMMDDTHHMMSS.mmmZ`.
pub(crate) fn id_of(t: DateTime<Utc>) -> String {
    t.format(ID_FORMAT).to_string()
}

/// The time an ID stands for; `None` unless `text` is exactly an ID.
pub(crate) fn parse_id(text: &str) -> Option<DateTime<Utc>> {
    let t = NaiveDateTime::parse_from_str(text, ID_FORMAT)
        .ok()?
        .and_utc();
    (id_of(t) == text).then_some(t)
}

/// The time a backup's name encodes, in any of the forms scripts write: an ID,
/// `YYYYMMDDTHHMMSSZ` (`date -u +%Y%m%dT%H%M%SZ`) or RFC 3339 (`2026-11-28T16:00:00Z`).
pub(crate) fn parse_name(text: &str) -> Option<DateTime<Utc>> {
    parse_id(text)
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%SZ")
                .ok()
                .map(|t| t.and_utc())
        })
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        })
}

/// The time for a new backup: `at` (to milliseconds) when given, else now, or one millisecond
/// after `newest` if now is not later — so backups seeded in quick succession stay distinct and
/// in order.
pub(crate) fn backup_time(
    at: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
) -> DateTime<Utc> {
    if let Some(at) = at {
        return millis(at);
    }
    let now = millis(Utc::now());
    match newest {
        Some(newest) if now <= newest => newest + TimeDelta::milliseconds(1),
        _ => now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_round_trip_and_only_exact_ids_parse() {
        let t = Utc.with_ymd_and_hms(2024, 3, 9, 7, 5, 1).unwrap() + TimeDelta::milliseconds(42);
        assert_eq!(id_of(t), "20240309T070501.042Z");
        assert_eq!(parse_id("20240309T070501.042Z"), Some(t));
        for bad in [
            "",
            "20240309T070501Z",
            "20240309T070501.042",
            "x20240309T070501.042Z",
        ] {
            assert_eq!(parse_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_parse_in_the_forms_scripts_write() {
        let t = Utc.with_ymd_and_hms(2026, 11, 28, 16, 0, 0).unwrap();
        assert_eq!(parse_name("20261128T160000Z"), Some(t));
        assert_eq!(parse_name("20261128T160000.000Z"), Some(t));
        assert_eq!(parse_name("2026-11-28T16:00:00Z"), Some(t));
        assert_eq!(parse_name("backup-1"), None);
    }

    #[test]
    fn new_backup_times_stay_after_the_newest() {
        let future = millis(Utc::now()) + TimeDelta::hours(1);
        assert_eq!(
            backup_time(None, Some(future)),
            future + TimeDelta::milliseconds(1)
        );
        let at = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap() + TimeDelta::microseconds(1500);
        assert_eq!(backup_time(Some(at), Some(future)), millis(at));
    }
}
