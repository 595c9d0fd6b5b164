//! The local runtime's claims: host directories, read and written as tar archives.

use std::path::Path;

use super::{Error, LocalRuntime, Result};
use crate::runtime::Claims;

impl Claims for LocalRuntime {
    async fn read_claim(&self, ns: &str, claim: &str) -> Result<Vec<u8>> {
        let dir = self.pvc_path(ns, claim)?;
        crate::archive::pack_dir(&dir, Vec::new()).map_err(claim_io("packing", &dir))
    }

    async fn write_claim(
        &self,
        ns: &str,
        claim: &str,
        archive: Vec<u8>,
        _owner: Option<(u32, u32)>,
    ) -> Result<()> {
        // NB: pods are this user's processes; the files stay this user's.
        let dir = self.pvc_path(ns, claim)?;
        crate::archive::replace_dir(&dir, &archive[..]).map_err(claim_io("replacing", &dir))
    }

    async fn count_claim_files(&self, ns: &str, claim: &str, limit: usize) -> Result<usize> {
        let dir = self.pvc_path(ns, claim)?;
        Ok(crate::archive::count_files(&dir, limit))
    }
}

fn claim_io(what: &'static str, dir: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = dir.to_owned();
    move |source| Error::Io {
        what: format!("{what} the claim's files"),
        path,
        source,
    }
}
