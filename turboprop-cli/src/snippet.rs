//! The text of a hit as its file holds it now, read confined to the repository: the path
//! recorded in the index must be a plain relative path, every folder on the way a real
//! folder, the file a regular file (no link, FIFO or device), and only the hit's own bytes
//! are read. Anything else gives a warning and no content, never another file's text.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::overlap::Found;
use turboprop_storage::{open_beneath, StorageError};

use crate::escape::escape_control;
use crate::output::Snippet;

/// The most bytes read from a changed file to show a hit's lines as they read now.
const MAX_RESCAN_BYTES: u64 = 16 * 1024 * 1024;

/// Reads hits' text from the files of one repository; warns once per file.
#[derive(Debug)]
pub struct Snippets<'a> {
    root: &'a Path,
    warned: HashSet<String>,
    warnings: Vec<String>,
}

impl<'a> Snippets<'a> {
    /// Reads below the repository root `root`.
    pub fn new(root: &'a Path) -> Self {
        Snippets {
            root,
            warned: HashSet::new(),
            warnings: Vec::new(),
        }
    }

    /// Warnings gathered since the last call (one line each, control characters escaped).
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn warn(&mut self, path: &str, message: impl FnOnce(&str) -> String) {
        if self.warned.insert(path.to_owned()) {
            self.warnings.push(message(&escape_control(path)));
        }
    }

    /// The hit's text as the file holds it now; when the file changed since it was indexed,
    /// the same lines as they read now, marked stale, with a warning.
    pub fn snippet(&mut self, hit: &Found) -> Snippet {
        let path = hit.chunk.file().to_owned();
        let none = Snippet {
            text: String::new(),
            stale: true,
        };
        let (mut file, len) = match open_beneath(self.root, Path::new(&path)) {
            Ok(opened) => opened,
            Err(e) => {
                self.warn(&path, |shown| refusal(shown, &e));
                return none;
            }
        };
        let range = hit.chunk.bytes();
        if range.end <= len && range.start <= range.end {
            let mut bytes = Vec::new();
            let read = file
                .seek(SeekFrom::Start(range.start))
                .and_then(|_| {
                    (&mut file)
                        .take(range.end - range.start)
                        .read_to_end(&mut bytes)
                })
                .is_ok();
            // A merged hit is checked part by part (see `Found::parts_intact`).
            if read && hit.parts_intact(&bytes) {
                return Snippet {
                    text: String::from_utf8_lossy(&bytes).into_owned(),
                    stale: false,
                };
            }
        }
        self.warn(&path, |shown| {
            format!("warning: {shown} changed since it was indexed; run tp index")
        });
        // Show the same lines as they read now, from at most the first MAX_RESCAN_BYTES.
        let mut bytes = Vec::new();
        let rescanned = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.take(MAX_RESCAN_BYTES).read_to_end(&mut bytes));
        if rescanned.is_err() {
            return none;
        }
        let text = String::from_utf8_lossy(&bytes)
            .lines()
            .skip(hit.chunk.line_start() as usize - 1)
            .take(hit.chunk.line_count() as usize)
            .collect::<Vec<_>>()
            .join("\n");
        Snippet { text, stale: true }
    }
}

/// Why a hit's file gives no content, as one warning line.
fn refusal(shown: &str, e: &StorageError) -> String {
    match e {
        StorageError::Missing { .. } => {
            format!("warning: {shown} is gone since it was indexed; run tp index")
        }
        StorageError::NotRegular { found, .. } => format!(
            "warning: {shown} (or a folder on its way) is now {found}, not a regular file inside the repository; no content is shown (tp reads no links or special files); run tp index"
        ),
        StorageError::Outside { .. } => format!(
            "warning: {shown} is not a path inside the repository (the index is damaged); no content is shown; run tp index --rebuild"
        ),
        other => format!(
            "warning: {shown} is unreadable since it was indexed ({}); run tp index",
            escape_control(&other.to_string())
        ),
    }
}
