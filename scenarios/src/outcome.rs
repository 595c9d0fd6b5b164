//! How a scenario says what went wrong: a [`Failure`] with a message that reads like a finding.

use std::fmt;

/// A failed expectation or a step that could not be done, with its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// What every scenario step returns.
pub type Check<T = ()> = Result<T, Failure>;

/// Turns any error into a [`Failure`] that says which step failed.
pub trait Context<T> {
    /// Prefixes the error with `step`.
    fn context(self, step: &str) -> Check<T>;
    /// Like [`Context::context`], with a message built only on error.
    fn with_context(self, step: impl FnOnce() -> String) -> Check<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, step: &str) -> Check<T> {
        self.map_err(|e| Failure(format!("{step}: {e}")))
    }

    fn with_context(self, step: impl FnOnce() -> String) -> Check<T> {
        self.map_err(|e| Failure(format!("{}: {e}", step())))
    }
}

/// Fails the scenario with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::outcome::Failure(format!($($fmt)+)));
        }
    };
}

/// Fails the scenario with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($fmt:tt)+) => {
        return Err($crate::outcome::Failure(format!($($fmt)+)))
    };
}
