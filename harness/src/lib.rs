//! phasecheck harness library.
