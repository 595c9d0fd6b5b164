//! Terminal output that never panics: a closed stdout or stderr (`phasecheck run | head -3`, a CI
//! log collector gone away) loses the text, never the run or its reports.
//!
//! Rust ignores SIGPIPE, so a write to a closed pipe fails with `EPIPE`, and `println!` panics on
//! that. Every line the CLI prints goes through [`say!`](crate::say) (stdout) or
//! [`note!`](crate::note) (stderr) instead, which drop write errors.

use std::fmt;
use std::io::{IsTerminal, Write};

/// Writes `args` and a newline to stdout; a write error (a closed pipe) is ignored.
pub fn out_line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
    let _ = out.flush();
}

/// Writes `args` to stdout without a newline; a write error is ignored.
pub fn out_text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Writes `args` and a newline to stderr; a write error (a closed pipe) is ignored.
pub fn err_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Like `println!`, but a closed stdout is not an error.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::term::out_line(format_args!($($arg)*))
    };
}

/// Like `eprintln!`, but a closed stderr is not an error.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::term::err_line(format_args!($($arg)*))
    };
}

/// Which stream a colour decision is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (the summary table).
    Stdout,
    /// Standard error (progress lines).
    Stderr,
}

/// Whether to colour what goes to `stream`: only on a terminal, and never when `NO_COLOR` is set
/// to a non-empty value (<https://no-color.org>).
pub fn colour(stream: Stream) -> bool {
    let tty = match stream {
        Stream::Stdout => std::io::stdout().is_terminal(),
        Stream::Stderr => std::io::stderr().is_terminal(),
    };
    tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}
