//! The `phasecheck-tools` program, as the claim helper runs it (`pack`, `replace`, `count`), against
//! the harness's own reading of volumes (`harness::archive`): the same bytes for the same
//! directory, and each side unpacks what the other packed.

use std::path::Path;

use std::io::Write as _;
use std::process::{Command, Stdio};

use harness::dataset::{Dataset, Snapshot};

/// Runs `phasecheck-tools args…` fed `stdin`; it must succeed; its standard output.
fn tools(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_phasecheck-tools"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("phasecheck-tools starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("stdin is written");
    let out = child.wait_with_output().expect("phasecheck-tools ends");
    assert!(
        out.status.success(),
        "phasecheck-tools {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A volume with what real data holds: hidden files, an empty file, a space and `ü`, deep
/// nesting, an empty directory and a symlink.
fn awkward_volume(dir: &Path) {
    let mut dataset = Dataset::generated("vol", 3, 500);
    for (path, len) in [
        (".hidden", 10),
        ("empty", 0),
        ("with space/grün ü.txt", 30),
        ("a/b/c/d/e/f/deep.bin", 40),
    ] {
        dataset.files.insert(
            path.to_owned(),
            harness::dataset::pseudo_random_bytes(path, len),
        );
    }
    dataset.write_files(dir).unwrap();
    // NB: tar keeps whole seconds; so do these files, so that a snapshot compares equal.
    let whole_second = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
    for path in dataset.files.keys() {
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join(path))
            .unwrap();
        file.set_modified(whole_second).unwrap();
    }
    std::fs::create_dir_all(dir.join("lost+found")).unwrap();
    std::os::unix::fs::symlink("a/b", dir.join("link")).unwrap();
}

#[test]
fn the_tools_program_packs_the_same_bytes_as_the_harness() {
    let dir = tempfile::tempdir().unwrap();
    awkward_volume(dir.path());
    let ours = harness::archive::pack_dir(dir.path(), Vec::new()).unwrap();
    let theirs = tools(&["pack", dir.path().to_str().unwrap()], b"");
    assert!(ours.len() > 10_000);
    assert!(ours == theirs, "the archives differ");
}

#[test]
fn each_side_unpacks_what_the_other_packed() {
    let dir = tempfile::tempdir().unwrap();
    awkward_volume(dir.path());
    let original = Snapshot::of(dir.path()).unwrap();

    let ours = harness::archive::pack_dir(dir.path(), Vec::new()).unwrap();
    let by_helper = tempfile::tempdir().unwrap();
    let size = ours.len().to_string();
    tools(
        &[
            "replace",
            by_helper.path().to_str().unwrap(),
            "--size",
            &size,
        ],
        &ours,
    );
    assert_eq!(
        original.first_difference(&Snapshot::of(by_helper.path()).unwrap()),
        None
    );
    assert!(by_helper.path().join("lost+found").is_dir());
    assert!(by_helper.path().join("link").is_symlink());

    let theirs = tools(&["pack", dir.path().to_str().unwrap()], b"");
    let by_harness = tempfile::tempdir().unwrap();
    std::fs::write(by_harness.path().join("stale"), b"old").unwrap();
    harness::archive::replace_dir(by_harness.path(), &theirs[..]).unwrap();
    assert_eq!(
        original.first_difference(&Snapshot::of(by_harness.path()).unwrap()),
        None
    );
    assert!(by_harness.path().join("lost+found").is_dir());
    assert_eq!(
        harness::archive::count_files(by_harness.path(), 100),
        original.len()
    );
    let counted = tools(&["count", by_harness.path().to_str().unwrap(), "100"], b"");
    assert_eq!(
        String::from_utf8(counted).unwrap().trim(),
        original.len().to_string()
    );
}
