//! Locating the repository and its index folder, and telling a damaged index from other
//! errors so every message ends with the way out.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use turboprop_index::{Index, IndexError};

/// A repository and its index folder.
#[derive(Debug, Clone)]
pub struct Repo {
    /// The repository root, canonical.
    pub root: PathBuf,
    /// `<root>/.turboprop/index`.
    pub index_dir: PathBuf,
}

impl Repo {
    /// The repository at `--repo` (or the current folder), which must be a folder.
    pub fn locate(arg: Option<&Path>) -> Result<Repo> {
        let given = match arg {
            Some(p) => p.to_path_buf(),
            None => std::env::current_dir().context("cannot read the current folder")?,
        };
        let root = match given.canonicalize() {
            Ok(p) => p,
            Err(_) => bail!(
                "repository {} does not exist: pass an existing folder with --repo",
                given.display()
            ),
        };
        if !root.is_dir() {
            bail!(
                "repository {} is not a folder: pass a folder with --repo",
                given.display()
            );
        }
        let tp = root.join(".turboprop");
        let index_dir = Index::folder_of_repo(&root);
        // The index is written and garbage-collected in place: through a link, that would be
        // someone else's folder. Both must be real folders inside the repository, or absent.
        for folder in [&tp, &index_dir] {
            match std::fs::symlink_metadata(folder) {
                Ok(meta) if meta.file_type().is_symlink() => bail!(
                    "{} is a symbolic link: tp keeps its index in a real folder inside the repository and never writes through a link; remove the link (its target is left alone), then run tp index",
                    shown(folder)
                ),
                Ok(meta) if !meta.is_dir() => bail!(
                    "{} exists but is not a folder: move it away so tp can keep its index there",
                    shown(folder)
                ),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot read {}", shown(folder)))
                }
            }
        }
        Ok(Repo { root, index_dir })
    }

    /// Fails if `.turboprop/index` holds something that is not a turboprop index.
    pub fn check_not_foreign(&self) -> Result<()> {
        let dir = &self.index_dir;
        let looks_ours = turboprop_storage::IndexDir::new(dir)
            .has_turboprop_entries()
            .map_err(|e| explain(e.into(), dir))?;
        if dir.exists() && !looks_ours {
            let non_empty = std::fs::read_dir(dir)
                .with_context(|| format!("cannot list {}", dir.display()))?
                .next()
                .is_some();
            if non_empty || !dir.is_dir() {
                bail!(
                    "{} is not a turboprop index (no version.txt): move it away, then run tp index",
                    dir.display()
                );
            }
        }
        Ok(())
    }

    /// Opens the committed index for reading, with messages that name the way out.
    pub fn open_index(&self) -> Result<Index> {
        self.check_not_foreign()?;
        Index::open(&self.index_dir).map_err(|e| explain(e, &self.index_dir))
    }
}

/// Adds the way out to an index error: damage is repaired by `tp index --rebuild`.
pub fn explain(e: IndexError, index_dir: &Path) -> anyhow::Error {
    if e.is_damage() {
        anyhow::Error::new(e).context(format!(
            "the index at {} is damaged; run tp index --rebuild (source files are not touched)",
            index_dir.display()
        ))
    } else {
        anyhow::Error::new(e)
    }
}

/// A path as shown in messages, with control characters escaped.
pub fn shown(path: &Path) -> String {
    crate::escape::escape_control(&path.display().to_string()).into_owned()
}
