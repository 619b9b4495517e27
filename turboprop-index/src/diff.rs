//! Incremental diffing: which files of a scan are new, possibly changed, unchanged or gone,
//! compared with the records of the committed index. Size and modification time are the
//! fast check; a file whose stat changed is confirmed by its content hash
//! ([`Diff::confirm`]) before anything is re-embedded.

use std::collections::HashMap;

use turboprop_types::{ContentHash, FileRecord};

/// A file found by a scan of the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScannedFile<'a> {
    /// Repository-relative path with `/` separators.
    pub path: &'a str,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// The status of one scanned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus<'a> {
    /// Not in the index.
    New,
    /// Same size and modification time as indexed: costs nothing.
    Unchanged(&'a FileRecord),
    /// Size or modification time differ: read it and [`Diff::confirm`] with its hash.
    StatChanged(&'a FileRecord),
}

/// What to do with a file whose stat changed, once its content hash is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Same content: keep the chunks, update the record (`IndexWriter::touch_file`).
    Touch,
    /// New content: re-chunk and re-embed (`IndexWriter::put_file`).
    Reembed,
}

/// The difference between the committed index and a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff<'a> {
    /// Status of every scanned file, in scan order.
    pub status: Vec<FileStatus<'a>>,
    /// Indexed files the scan no longer has, sorted.
    pub removed: Vec<&'a str>,
}

impl<'a> Diff<'a> {
    /// Compares `stored` records with `scanned` files.
    ///
    /// ```
    /// use turboprop_index::{Diff, FileStatus, ScannedFile};
    /// use turboprop_types::{ContentHash, FileRecord};
    ///
    /// let old = vec![
    ///     FileRecord::new("a.rs", 10, 1, ContentHash::of(b"a"))?,
    ///     FileRecord::new("gone.rs", 5, 1, ContentHash::of(b"g"))?,
    /// ];
    /// let scan = [
    ///     ScannedFile { path: "a.rs", size: 10, mtime_ns: 1 },
    ///     ScannedFile { path: "b.rs", size: 3, mtime_ns: 2 },
    /// ];
    /// let diff = Diff::new(&old, &scan);
    /// assert!(matches!(diff.status[0], FileStatus::Unchanged(_)));
    /// assert_eq!(diff.status[1], FileStatus::New);
    /// assert_eq!(diff.removed, vec!["gone.rs"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        stored: impl IntoIterator<Item = &'a FileRecord>,
        scanned: &[ScannedFile<'_>],
    ) -> Diff<'a> {
        let mut by_path: HashMap<&'a str, &'a FileRecord> =
            stored.into_iter().map(|r| (r.path(), r)).collect();
        let status = scanned
            .iter()
            .map(|s| match by_path.remove(s.path) {
                None => FileStatus::New,
                Some(r) if r.same_stat(s.size, s.mtime_ns) => FileStatus::Unchanged(r),
                Some(r) => FileStatus::StatChanged(r),
            })
            .collect();
        let mut removed: Vec<&'a str> = by_path.into_keys().collect();
        removed.sort_unstable();
        Diff { status, removed }
    }

    /// Decides, from its new content hash, what a file with a changed stat needs.
    pub fn confirm(stored: &FileRecord, new_hash: ContentHash) -> Confirmed {
        if stored.hash() == new_hash {
            Confirmed::Touch
        } else {
            Confirmed::Reembed
        }
    }

    /// Counts of (new, stat-changed, unchanged) files.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in &self.status {
            match s {
                FileStatus::New => c.0 += 1,
                FileStatus::StatChanged(_) => c.1 += 1,
                FileStatus::Unchanged(_) => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn rec(path: &str, size: u64, mtime: i64, content: u8) -> FileRecord {
        FileRecord::new(path, size, mtime, ContentHash::of(&[content])).expect("valid")
    }

    proptest! {
        /// Applying diff(old, new) to old gives new.
        #[test]
        fn applying_the_diff_gives_the_scan(
            old in prop::collection::btree_map(0u8..30, (0u64..3, 0i64..3, 0u8..3), 0..20),
            new in prop::collection::btree_map(0u8..30, (0u64..3, 0i64..3, 0u8..3), 0..20),
        ) {
            let name = |k: u8| format!("f{k}.rs");
            let old_recs: Vec<FileRecord> =
                old.iter().map(|(k, &(s, m, c))| rec(&name(*k), s, m, c)).collect();
            let names: Vec<String> = new.keys().map(|k| name(*k)).collect();
            let scan: Vec<ScannedFile<'_>> = new
                .iter()
                .zip(&names)
                .map(|((_, &(s, m, _)), n)| ScannedFile { path: n, size: s, mtime_ns: m })
                .collect();
            let diff = Diff::new(&old_recs, &scan);

            let mut state: BTreeMap<String, FileRecord> =
                old_recs.iter().map(|r| (r.path().to_owned(), r.clone())).collect();
            for path in &diff.removed {
                state.remove(*path);
            }
            for ((_, &(s, m, c)), (st, n)) in new.iter().zip(diff.status.iter().zip(&names)) {
                let fresh = rec(n, s, m, c);
                match st {
                    FileStatus::New => { state.insert(n.clone(), fresh); }
                    FileStatus::Unchanged(r) => prop_assert!(r.same_stat(s, m)),
                    FileStatus::StatChanged(r) => {
                        // Same content keeps the chunks but takes the new stat.
                        let _ = Diff::confirm(r, fresh.hash());
                        state.insert(n.clone(), fresh);
                    }
                }
            }
            let want: BTreeMap<String, (u64, i64)> =
                new.iter().map(|(k, &(s, m, _))| (name(*k), (s, m))).collect();
            let got: BTreeMap<String, (u64, i64)> =
                state.iter().map(|(p, r)| (p.clone(), (r.size(), r.mtime_ns()))).collect();
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn confirm_uses_the_hash() {
        let r = rec("a.rs", 1, 1, 7);
        assert_eq!(Diff::confirm(&r, ContentHash::of(&[7])), Confirmed::Touch);
        assert_eq!(Diff::confirm(&r, ContentHash::of(&[8])), Confirmed::Reembed);
    }
}
