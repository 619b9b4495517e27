//! tp: the turboprop command line.
fn main() {}
