//! How a scenario says what went wrong: a [`Failure`] with a message that reads like a finding,
//! and whether the subject broke the requirement ([`Kind::Violation`]) or the harness could not
//! run the scenario ([`Kind::Error`]: a store that did not start, a runtime that timed out, a seed
//! that could not be written). Only violations are verdicts.
//!
//! `ensure!` and `fail!` state violations. Errors of the harness's own steps become
//! [`Kind::Error`] through `?` or [`Context::context`]; a step whose failure is the subject's
//! (the app not answering, a pod never ready) says so with [`Context::violation`].

use std::fmt;

/// Whose fault a [`Failure`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The subject broke the requirement.
    Violation,
    /// The harness could not run the scenario; no verdict.
    Error,
}

/// A failed expectation or a step that could not be done, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Whose fault it is.
    pub kind: Kind,
    /// What happened, in words.
    pub message: String,
}

impl Failure {
    /// The subject broke the requirement.
    pub fn violation(message: impl Into<String>) -> Self {
        Failure {
            kind: Kind::Violation,
            message: message.into(),
        }
    }

    /// The harness could not run the scenario.
    pub fn error(message: impl Into<String>) -> Self {
        Failure {
            kind: Kind::Error,
            message: message.into(),
        }
    }

    /// The same failure with its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Self {
        Failure {
            kind: self.kind,
            message: f(self.message),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

// NB: `Failure` is deliberately not `std::error::Error`, so that this blanket conversion (every
// error of a harness step is a harness error) does not overlap with `From<Failure> for Failure`.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::error(e.to_string())
    }
}

/// What every scenario step returns.
pub type Check<T = ()> = Result<T, Failure>;

/// Turns any error into a [`Failure`] that says which step failed.
pub trait Context<T> {
    /// Prefixes the error with `step`; a harness error stays one, a violation stays one.
    fn context(self, step: &str) -> Check<T>;
    /// Like [`Context::context`], with a message built only on error.
    fn with_context(self, step: impl FnOnce() -> String) -> Check<T>;
    /// Prefixes the error with `step` and makes it the subject's: `step` is something the
    /// subject must do (answer, become ready, restore).
    fn violation(self, step: &str) -> Check<T>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context(self, step: &str) -> Check<T> {
        self.map_err(|e| e.into().map_message(|m| format!("{step}: {m}")))
    }

    fn with_context(self, step: impl FnOnce() -> String) -> Check<T> {
        self.map_err(|e| e.into().map_message(|m| format!("{}: {m}", step())))
    }

    fn violation(self, step: &str) -> Check<T> {
        self.map_err(|e| Failure::violation(format!("{step}: {}", e.into().message)))
    }
}

/// Fails the scenario (a violation) with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::outcome::Failure::violation(format!($($fmt)+)));
        }
    };
}

/// Fails the scenario (a violation) with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($fmt:tt)+) => {
        return Err($crate::outcome::Failure::violation(format!($($fmt)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_error_is_a_harness_error_and_context_keeps_the_kind() {
        let io: Result<(), std::io::Error> = Err(std::io::Error::other("disk full"));
        let failure = io.context("seeding").unwrap_err();
        assert_eq!(failure.kind, Kind::Error);
        assert_eq!(failure.message, "seeding: disk full");
        let violation: Check = Err(Failure::violation("served 3 files"));
        let failure = violation.context("after a restart").unwrap_err();
        assert_eq!(failure.kind, Kind::Violation);
        assert_eq!(failure.message, "after a restart: served 3 files");
    }

    #[test]
    fn violation_makes_a_step_the_subjects() {
        let io: Result<(), std::io::Error> = Err(std::io::Error::other("refused"));
        let failure = io.violation("reading the app").unwrap_err();
        assert_eq!(failure.kind, Kind::Violation);
    }
}
