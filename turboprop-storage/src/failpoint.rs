//! Failpoints: named places in a commit where a test can inject an I/O error, to prove that a
//! failure at any step leaves the previous commit intact. Compiled to nothing unless the
//! `failpoints` cargo feature is on; only the failpoint test binary turns it on.

use crate::error::Result;

/// Every failpoint, in the order a commit reaches them.
pub const FAILPOINTS: &[&str] = &[
    "segment:create",
    "table:write",
    "table:sync",
    "table:verify",
    "segment:metadata",
    "segment:sync",
    "deletes:write",
    "manifest:write",
    "manifest:rename",
    "manifest:sync",
    "gc:remove",
];

#[cfg(feature = "failpoints")]
mod active {
    use std::sync::Mutex;

    pub(super) static ARMED: Mutex<Option<&'static str>> = Mutex::new(None);
}

/// Makes the next pass through failpoint `name` fail (feature `failpoints` only).
#[cfg(feature = "failpoints")]
pub fn arm(name: &'static str) {
    if let Ok(mut armed) = active::ARMED.lock() {
        *armed = Some(name);
    }
}

/// Disarms every failpoint (feature `failpoints` only).
#[cfg(feature = "failpoints")]
pub fn disarm() {
    if let Ok(mut armed) = active::ARMED.lock() {
        *armed = None;
    }
}

/// Fails with an injected I/O error if `name` is armed; disarms it.
#[cfg(feature = "failpoints")]
pub(crate) fn check(name: &'static str, path: &std::path::Path) -> Result<()> {
    let hit = active::ARMED
        .lock()
        .map(|mut armed| {
            if *armed == Some(name) {
                *armed = None;
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if hit {
        return Err(crate::StorageError::io(
            "failpoint",
            path,
            std::io::Error::other(format!("injected failure at {name}")),
        ));
    }
    Ok(())
}

/// Without the `failpoints` feature, failpoints cost nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn check(_name: &'static str, _path: &std::path::Path) -> Result<()> {
    Ok(())
}
