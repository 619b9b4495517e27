//! Locating the repository and its index folder, and telling a damaged index from other
//! errors so every message ends with the way out.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use turboprop_index::{Index, IndexError};
use turboprop_storage::StorageError;

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

/// The way out of damage to the index's data: `tp index` checks the index before building
/// on it, drops what is damaged and indexes those files again.
pub const REPAIR: &str = "run tp index to repair the index (tp index --rebuild rebuilds all of it; source files are not touched)";

/// The way out of a damaged `config.yaml`, which `tp index` does not overwrite by itself.
pub const FIX_CONFIG: &str =
    "fix config.yaml, delete it for the defaults, or run tp index --rebuild";

/// An index error for the CLI. Damage gets its way out when the error is printed (see
/// [`way_out`]), so every error that means damage ends with it.
pub fn explain(e: IndexError, _index_dir: &Path) -> anyhow::Error {
    anyhow::Error::new(e)
}

/// The way out of the damage `e` reports, if any error of its chain means the index is
/// damaged: [`FIX_CONFIG`] for `config.yaml`, else [`REPAIR`].
pub fn way_out(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|cause| {
        let storage = match cause.downcast_ref::<IndexError>() {
            Some(IndexError::Storage(s)) => Some(s),
            Some(i) => return i.is_damage().then_some(REPAIR),
            None => cause.downcast_ref::<StorageError>(),
        }?;
        if !storage.is_damage() {
            return None;
        }
        let config = damaged_file(storage)
            .and_then(Path::file_name)
            .is_some_and(|name| name == turboprop_storage::CONFIG_FILE);
        Some(if config { FIX_CONFIG } else { REPAIR })
    })
}

/// The file a damage error names.
fn damaged_file(e: &StorageError) -> Option<&Path> {
    match e {
        StorageError::Missing { path }
        | StorageError::BadMagic { path, .. }
        | StorageError::SizeMismatch { path, .. }
        | StorageError::HeaderChecksum { path }
        | StorageError::PayloadChecksum { path }
        | StorageError::Corrupt { path, .. }
        | StorageError::Json { path, .. }
        | StorageError::Yaml { path, .. } => Some(path),
        _ => None,
    }
}

/// A path as shown in messages, with control characters escaped.
pub fn shown(path: &Path) -> String {
    crate::escape::escape_control(&path.display().to_string()).into_owned()
}
