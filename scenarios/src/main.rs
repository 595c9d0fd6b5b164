//! phasecheck CLI.
fn main() {}
