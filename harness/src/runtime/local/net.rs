//! Pod addresses: one loopback address per pod.
//!
//! Linux routes all of 127.0.0.0/8 to the loopback interface, so every pod can listen on its own
//! address and the same port without a clash. Addresses come from 127.10.0.0/16, one pool per
//! process shared by every runtime in it (tests run runtimes side by side), starting at a random
//! place. An address is not handed out again while its pod lives, and never while another
//! process on this host holds it: each live address is an exclusive lock on a file in
//! `/dev/shm/phasecheck-pod-addresses/` (`flock`, released by the kernel however the holder
//! dies), so two runs on one machine (parallel CI jobs, a run beside `cargo test`) never give
//! two pods the same address.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::sync::{Mutex, OnceLock};

/// Addresses per pool: 127.10.0.0/16 minus the `.0` and `.255` hosts of each /24.
const POOL: u32 = 256 * 254;

struct Pool {
    next: u32,
    taken: BTreeSet<u32>,
}

fn pool() -> &'static Mutex<Pool> {
    static POOL_STATE: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL_STATE.get_or_init(|| {
        Mutex::new(Pool {
            next: (random_u64() % u64::from(POOL)) as u32,
            taken: BTreeSet::new(),
        })
    })
}

fn address(slot: u32) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, (slot / 254) as u8, (slot % 254 + 1) as u8)
}

/// A pod's address, returned to the pool on drop.
#[derive(Debug)]
pub(super) struct PodIp {
    slot: u32,
    /// This host's claim on the address; `None` where no lock file could be made.
    _lock: Option<nix::fcntl::Flock<std::fs::File>>,
}

/// Where the address locks live: one place for the whole host, whatever a run's `TMPDIR`
/// (`/dev/shm` where there is one, else `/tmp`).
fn lock_dir() -> std::path::PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    std::path::Path::new(base).join("phasecheck-pod-addresses")
}

/// Claims `addr` for this process among every process on this host: `Err(())` when another
/// holds it; `Ok(None)` when the lock directory cannot be used (the in-process pool still
/// keeps this process's pods apart).
fn claim_on_host(addr: Ipv4Addr) -> Result<Option<nix::fcntl::Flock<std::fs::File>>, ()> {
    let dir = lock_dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return Ok(None);
    }
    // NB: every user's runs share the directory (the sticky bit keeps their files theirs).
    use std::os::unix::fs::PermissionsExt as _;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(addr.to_string()))
    else {
        return Ok(None);
    };
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(()),
        Err(_) => Ok(None),
    }
}

impl PodIp {
    /// Takes a free address; `None` if all 65 024 are in use.
    pub(super) fn allocate() -> Option<PodIp> {
        let mut pool = pool().lock().expect("ip pool lock");
        for _ in 0..POOL {
            let slot = pool.next;
            pool.next = (pool.next + 1) % POOL;
            if !pool.taken.insert(slot) {
                continue;
            }
            match claim_on_host(address(slot)) {
                Ok(lock) => return Some(PodIp { slot, _lock: lock }),
                Err(()) => {
                    pool.taken.remove(&slot);
                }
            }
        }
        None
    }

    /// The address.
    pub(super) fn addr(&self) -> Ipv4Addr {
        address(self.slot)
    }
}

impl Drop for PodIp {
    fn drop(&mut self) {
        if let Ok(mut pool) = pool().lock() {
            pool.taken.remove(&self.slot);
        }
    }
}

/// A random number from the standard library's hasher keys (no extra dependency).
pub(super) fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_addresses_are_distinct_loopback_addresses() {
        let a = PodIp::allocate().unwrap();
        let b = PodIp::allocate().unwrap();
        assert_ne!(a.addr(), b.addr());
        for ip in [a.addr(), b.addr()] {
            assert!(ip.is_loopback());
            assert_eq!(ip.octets()[1], 10);
            assert!(ip.octets()[3] != 0 && ip.octets()[3] != 255);
        }
    }

    #[test]
    fn an_address_another_process_holds_is_skipped() {
        let next = address(pool().lock().unwrap().next);
        // NB: flock locks belong to open files: a second open of the same file conflicts even
        // in this process, as another process's would.
        let held = claim_on_host(next)
            .unwrap()
            .expect("the lock directory is usable");
        let ip = PodIp::allocate().unwrap();
        assert_ne!(ip.addr(), next);
        drop(held);
    }
}
