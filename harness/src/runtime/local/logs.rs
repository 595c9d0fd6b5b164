//! Container logs: one file per run, stdout and stderr interleaved line by line, and waiting for
//! a line to appear.

use std::fs::File;
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;

/// The logs of one container of one pod, across its runs.
pub(super) struct LogBook {
    dir: PathBuf,
    files: Mutex<Vec<PathBuf>>,
    /// Lines written so far; every line bumps it after it is in the file.
    written: watch::Sender<u64>,
}

/// The open log file of one run.
#[derive(Clone)]
pub(super) struct RunLog {
    file: Arc<Mutex<File>>,
    written: watch::Sender<u64>,
}

impl LogBook {
    /// Logs kept in `dir` (created on the first run).
    pub(super) fn new(dir: PathBuf) -> Self {
        LogBook {
            dir,
            files: Mutex::new(Vec::new()),
            written: watch::Sender::new(0),
        }
    }

    /// Creates the file of run number `run` (0 for the first).
    pub(super) fn open_run(&self, run: u32) -> io::Result<RunLog> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.dir.join(format!("{run}.log"));
        let file = File::create(&path)?;
        self.files.lock().expect("log lock").push(path);
        Ok(RunLog {
            file: Arc::new(Mutex::new(file)),
            written: self.written.clone(),
        })
    }

    /// Every run's log, oldest first.
    pub(super) fn read_all(&self) -> io::Result<String> {
        let files = self.files.lock().expect("log lock").clone();
        let mut out = Vec::new();
        for path in files {
            out.extend(std::fs::read(&path)?);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Resolves `true` once some run has logged a line containing `needle`, `false` at
    /// `deadline`.
    pub(super) async fn wait_for_line(&self, needle: &str, deadline: Instant) -> io::Result<bool> {
        let mut changes = self.written.subscribe();
        let mut scan = Scan::default();
        loop {
            changes.borrow_and_update();
            let files = self.files.lock().expect("log lock").clone();
            if scan.find(&files, needle.as_bytes())? {
                return Ok(true);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Ok(false),
            }
        }
    }
}

impl RunLog {
    /// Appends one line (a newline is added if missing) and tells the watchers.
    fn write_line(&self, line: &[u8]) {
        {
            let mut file = self.file.lock().expect("log file lock");
            let _ = file.write_all(line);
            if !line.ends_with(b"\n") {
                let _ = file.write_all(b"\n");
            }
        }
        self.written.send_modify(|n| *n += 1);
    }

    /// Copies `stream` into the log line by line until it ends.
    pub(super) async fn pump(self, stream: impl AsyncRead + Unpin) {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => self.write_line(&line),
            }
        }
    }

    /// Writes a note from the runtime itself (e.g. why a start failed).
    pub(super) fn note(&self, text: &str) {
        self.write_line(format!("[phasecheck local runtime] {text}").as_bytes());
    }
}

/// Where a scan of the log files got to.
#[derive(Default)]
struct Scan {
    file: usize,
    offset: u64,
}

impl Scan {
    /// Reads complete lines added since the last call; true if one contains `needle`.
    fn find(&mut self, files: &[PathBuf], needle: &[u8]) -> io::Result<bool> {
        while self.file < files.len() {
            let (lines, consumed) = read_complete_lines(&files[self.file], self.offset)?;
            self.offset += consumed;
            if lines
                .split(|b| *b == b'\n')
                .any(|line| contains(line, needle))
            {
                return Ok(true);
            }
            if self.file + 1 < files.len() {
                // NB: a later run exists, so this file is complete.
                self.file += 1;
                self.offset = 0;
            } else {
                break;
            }
        }
        Ok(false)
    }
}

fn read_complete_lines(path: &Path, offset: u64) -> io::Result<(Vec<u8>, u64)> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let end = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(end);
    Ok((bytes, end as u64))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_watcher_sees_lines_of_earlier_and_later_runs() {
        let dir = tempfile::tempdir().unwrap();
        let book = LogBook::new(dir.path().join("c"));
        book.open_run(0).unwrap().write_line(b"first run\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(book.wait_for_line("first", deadline).await.unwrap());
        let later = book.open_run(1).unwrap();
        let watch = book.wait_for_line("second", deadline);
        let write = async {
            tokio::task::yield_now().await;
            later.write_line(b"the second");
        };
        let (found, ()) = tokio::join!(watch, write);
        assert!(found.unwrap());
        assert_eq!(book.read_all().unwrap(), "first run\nthe second\n");
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(!book.wait_for_line("never", soon).await.unwrap());
    }
}
