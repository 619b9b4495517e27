//! [`FileFilter`]: which files a search may return (`--filetype`, `--filter`). Applied to
//! files, before any row is scored, so a filtered search still fills its top-k.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{IndexError, Result};

/// Restricts a search to files with given extensions and/or matching given globs.
/// An empty filter accepts every file.
#[derive(Debug, Clone, Default)]
pub struct FileFilter {
    extensions: Vec<String>,
    globs: Option<GlobSet>,
}

impl FileFilter {
    /// A filter that accepts every file.
    pub fn any() -> FileFilter {
        FileFilter::default()
    }

    /// Also require one of these extensions (`.rs`, `rs` and `RS` all mean the same).
    ///
    /// ```
    /// use turboprop_index::FileFilter;
    /// let f = FileFilter::any().with_extensions([".py"]);
    /// assert!(f.matches("poker/pot.py"));
    /// assert!(!f.matches("src/hand.rs"));
    /// ```
    pub fn with_extensions<S: AsRef<str>>(mut self, exts: impl IntoIterator<Item = S>) -> Self {
        self.extensions.extend(
            exts.into_iter()
                .map(|e| {
                    e.as_ref()
                        .trim()
                        .trim_start_matches('.')
                        .to_ascii_lowercase()
                })
                .filter(|e| !e.is_empty()),
        );
        self
    }

    /// Also require a match with one of these globs (gitignore-like: `src/**/*.rs`,
    /// `*test*`); a glob without `/` matches the file name at any depth.
    pub fn with_globs<S: AsRef<str>>(mut self, globs: impl IntoIterator<Item = S>) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        let mut any = false;
        for g in globs {
            let g = g.as_ref();
            let pattern = if g.contains('/') {
                g.trim_start_matches('/').to_owned()
            } else {
                format!("**/{g}")
            };
            let glob = Glob::new(&pattern).map_err(|source| IndexError::BadGlob {
                glob: g.to_owned(),
                source,
            })?;
            builder.add(glob);
            any = true;
        }
        if any {
            let set = builder.build().map_err(|source| IndexError::BadGlob {
                glob: "(set)".to_owned(),
                source,
            })?;
            self.globs = Some(set);
        }
        Ok(self)
    }

    /// Whether the filter accepts every file.
    pub fn is_any(&self) -> bool {
        self.extensions.is_empty() && self.globs.is_none()
    }

    /// Whether `path` (repository-relative, `/`-separated) passes.
    pub fn matches(&self, path: &str) -> bool {
        if !self.extensions.is_empty() {
            let name = path.rsplit('/').next().unwrap_or(path);
            let ext = match name.rfind('.') {
                Some(i) if i > 0 => name[i + 1..].to_ascii_lowercase(),
                _ => String::new(),
            };
            if !self.extensions.contains(&ext) {
                return false;
            }
        }
        match &self.globs {
            Some(set) => set.is_match(path),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_and_globs_combine() {
        let f = FileFilter::any()
            .with_extensions(["rs", ".PY"])
            .with_globs(["src/**"])
            .expect("valid glob");
        assert!(f.matches("src/a/b.rs"));
        assert!(f.matches("src/x.py"));
        assert!(!f.matches("tests/x.py"));
        assert!(!f.matches("src/x.ts"));
        assert!(!f.matches("src/.rs"));
    }

    #[test]
    fn bare_globs_match_names_anywhere() {
        let f = FileFilter::any().with_globs(["*_test.py"]).expect("valid");
        assert!(f.matches("a/b/pot_test.py"));
        assert!(f.matches("pot_test.py"));
        assert!(!f.matches("pot.py"));
    }

    #[test]
    fn bad_glob_is_a_typed_error() {
        let err = FileFilter::any()
            .with_globs(["a[b"])
            .expect_err("must fail");
        assert!(err.to_string().contains("a[b"));
    }
}
