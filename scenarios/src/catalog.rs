//! The conformance catalog: every requirement declared once — stable ID, name, text, what its
//! scenario needs, and which check runs it — so listing, dispatch, skips and counts all come from
//! [`CATALOG`] (see DESIGN.md).

/// Version of the catalog this crate checks.
pub const CATALOG_VERSION: &str = "v1";

/// Something a requirement's scenario needs from the subject or the services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Taking the backup store down and bringing it back (external stores cannot).
    StoreOutage,
    /// Writing the volume before the pod exists: the data volume must be a claim.
    DataClaim,
    /// A retention knob (`retention:` in the profile).
    Retention,
    /// Reading a file through the app (`app.read`).
    AppRead,
    /// Writing a file through the app (`app.write`).
    AppWrite,
}

/// Which check runs a requirement's scenario (see `checks::run`, which matches every one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckId {
    /// INIT-1.
    RestoreEmpty,
    /// INIT-2.
    KeepValid,
    /// INIT-3.
    RepairCorrupt,
    /// INIT-4.
    FreshStart,
    /// INIT-5.
    SkipBadBackup,
    /// INIT-6.
    NoStartBlind,
    /// INIT-7.
    AtomicRestore,
    /// RUN-1.
    Ordering,
    /// RUN-2.
    ServesRestored,
    /// SEC-1.
    CredsIsolated,
    /// SEC-2.
    MaintReadOnly,
    /// MNT-1.
    OnSchedule,
    /// MNT-2.
    RoundTrip,
    /// MNT-3.
    StoreOutage,
    /// MNT-4.
    Retention,
    /// MNT-5.
    SidecarCrash,
    /// MNT-6.
    Consistent,
    /// LIFE-1.
    Recreate,
}

/// One requirement of the catalog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Stable ID, e.g. `INIT-1`.
    pub id: &'static str,
    /// Short name, e.g. `restore-empty`.
    pub name: &'static str,
    /// The requirement in one line.
    pub text: &'static str,
    /// What its scenario needs; without it the case is skipped or not applicable.
    pub needs: &'static [Need],
    /// The check that runs it.
    pub check: CheckId,
}

impl Requirement {
    /// Whether its scenario spends most of its time waiting for a scheduled backup (the
    /// schedule is set a lead ahead): such cases start first, so they wait while others work.
    pub fn waits_on_schedule(&self) -> bool {
        matches!(
            self.check,
            CheckId::OnSchedule
                | CheckId::RoundTrip
                | CheckId::StoreOutage
                | CheckId::Retention
                | CheckId::SidecarCrash
                | CheckId::Consistent
        )
    }
}

/// Every requirement, in catalog order.
pub const CATALOG: &[Requirement] = &[
    Requirement {
        id: "INIT-1",
        name: "restore-empty",
        text: "volume empty, backups exist → the newest valid backup is restored before the run phase starts",
        needs: &[],
        check: CheckId::RestoreEmpty,
    },
    Requirement {
        id: "INIT-2",
        name: "keep-valid",
        text: "volume holds a valid dataset newer than any backup → left byte-for-byte unchanged",
        needs: &[Need::DataClaim],
        check: CheckId::KeepValid,
    },
    Requirement {
        id: "INIT-3",
        name: "repair-corrupt",
        text: "volume corrupt (truncated file, flipped bytes, deleted file, missing manifest) → newest valid backup restored",
        needs: &[Need::DataClaim],
        check: CheckId::RepairCorrupt,
    },
    Requirement {
        id: "INIT-4",
        name: "fresh-start",
        text: "volume empty, no backup → init succeeds, the app starts on an empty dataset",
        needs: &[],
        check: CheckId::FreshStart,
    },
    Requirement {
        id: "INIT-5",
        name: "skip-bad-backup",
        text: "newest backup fails verification → the newest backup that passes is restored",
        needs: &[],
        check: CheckId::SkipBadBackup,
    },
    Requirement {
        id: "INIT-6",
        name: "no-start-blind",
        text: "store unreachable and volume empty or corrupt → the run phase never starts on that data; once the store is back, restore completes and the app starts",
        needs: &[Need::StoreOutage],
        check: CheckId::NoStartBlind,
    },
    Requirement {
        id: "INIT-7",
        name: "atomic-restore",
        text: "an init killed mid-restore leaves nothing the next attempt mistakes for a valid dataset",
        needs: &[],
        check: CheckId::AtomicRestore,
    },
    Requirement {
        id: "RUN-1",
        name: "ordering",
        text: "every run-phase container starts after every restore init container terminated with exit 0",
        needs: &[],
        check: CheckId::Ordering,
    },
    Requirement {
        id: "RUN-2",
        name: "serves-restored",
        text: "the app serves exactly the restored dataset",
        needs: &[Need::AppRead],
        check: CheckId::ServesRestored,
    },
    Requirement {
        id: "SEC-1",
        name: "creds-isolated",
        text: "no run-phase container can read backup credentials: not in its spec, its environment, or any file under its mounts (the data volume included)",
        needs: &[],
        check: CheckId::CredsIsolated,
    },
    Requirement {
        id: "SEC-2",
        name: "maint-read-only",
        text: "the maintenance container mounts the data's storage read-only, through any volume (SHOULD)",
        needs: &[],
        check: CheckId::MaintReadOnly,
    },
    Requirement {
        id: "MNT-1",
        name: "on-schedule",
        text: "a backup appears at the scheduled time within tolerance, and none before it",
        needs: &[],
        check: CheckId::OnSchedule,
    },
    Requirement {
        id: "MNT-2",
        name: "round-trip",
        text: "write through the app → scheduled backup → wipe the volume → recreate the pod → the same data is served",
        needs: &[Need::AppWrite],
        check: CheckId::RoundTrip,
    },
    Requirement {
        id: "MNT-3",
        name: "store-outage",
        text: "store down at backup time → the app keeps serving, earlier backups stay intact, the missed backup is taken within 60 s of the store's return",
        needs: &[Need::StoreOutage],
        check: CheckId::StoreOutage,
    },
    Requirement {
        id: "MNT-4",
        name: "retention",
        text: "at most N backups are kept, the newest valid one never pruned",
        needs: &[Need::Retention],
        check: CheckId::Retention,
    },
    Requirement {
        id: "MNT-5",
        name: "sidecar-crash",
        text: "the maintenance container killed → restarted, the app never interrupted, the schedule kept",
        needs: &[],
        check: CheckId::SidecarCrash,
    },
    Requirement {
        id: "MNT-6",
        name: "consistent",
        text: "a backup taken while the app writes verifies as a valid dataset",
        needs: &[Need::AppWrite],
        check: CheckId::Consistent,
    },
    Requirement {
        id: "LIFE-1",
        name: "recreate",
        text: "the pod deleted → the new pod's init runs again and the data survives (PVC) or is restored (emptyDir)",
        needs: &[Need::AppWrite],
        check: CheckId::Recreate,
    },
];

/// Every requirement ID, in catalog order.
pub fn ids() -> Vec<&'static str> {
    CATALOG.iter().map(|r| r.id).collect()
}

impl Requirement {
    /// Whether the scenario needs `need`.
    pub fn needs(&self, need: Need) -> bool {
        self.needs.contains(&need)
    }
}

/// Looks a requirement up by ID (case-insensitive).
pub fn requirement(id: &str) -> Option<&'static Requirement> {
    CATALOG.iter().find(|r| r.id.eq_ignore_ascii_case(id))
}

/// Requirements whose ID matches a glob (`*` any run, `?` one character; case-insensitive).
pub fn select(pattern: &str) -> Vec<&'static Requirement> {
    CATALOG
        .iter()
        .filter(|r| glob_match(&pattern.to_ascii_uppercase(), r.id))
        .collect()
}

fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic two-pointer wildcard match with backtracking to the last `*`.
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The catalog as the `list` command prints it.
pub fn listing() -> String {
    let mut out = String::new();
    for r in CATALOG {
        out.push_str(&format!("{:<7} {:<16} {}\n", r.id, r.name, r.text));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_look_like_family_dash_number() {
        let mut ids: Vec<_> = CATALOG.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), CATALOG.len());
        for id in ids {
            let (family, number) = id.split_once('-').unwrap();
            assert!(["INIT", "RUN", "SEC", "MNT", "LIFE"].contains(&family));
            number.parse::<u32>().unwrap();
        }
    }

    #[test]
    fn globs_select_families_and_single_ids() {
        assert_eq!(select("INIT-*").len(), 7);
        assert_eq!(select("mnt-?").len(), 6);
        assert_eq!(select("LIFE-1").len(), 1);
        assert_eq!(select("*").len(), CATALOG.len());
        assert!(select("NOPE-1").is_empty());
    }
}
