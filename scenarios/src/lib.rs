//! The conformance catalog.
