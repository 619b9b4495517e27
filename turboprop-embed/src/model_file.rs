//! Reading the files of a model folder, which may have arrived with a `git clone` and so is
//! untrusted input.
//!
//! Every file is opened without following a symbolic link (`O_NOFOLLOW`) and without
//! blocking (`O_NONBLOCK`, so a FIFO cannot hang the open), then checked with `fstat` to be a
//! regular file no larger than its format's cap, before anything proportional to its size is
//! allocated. Parse errors are described by kind and position only: a message never quotes
//! the file's content (serde_json's own messages can).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use crate::model_dir::ModelError;

/// Largest `config.json` read (a BERT config is under 1 KiB).
pub const CONFIG_CAP: u64 = 1 << 20;
/// Largest `1_Pooling/config.json` read.
pub const POOLING_CAP: u64 = 64 << 10;
/// Largest `tokenizer.json` read (all-MiniLM-L6-v2's is 455 KiB, multilingual ones ~17 MiB).
pub const TOKENIZER_CAP: u64 = 64 << 20;
/// Largest `model.safetensors` opened (its tensors are read one at a time, never whole).
pub const WEIGHTS_CAP: u64 = 16 << 30;

/// Opens `path` for reading if it is a regular file (not a link, FIFO, device or folder) of
/// at most `cap` bytes; returns the file and its length.
pub(crate) fn open_checked(path: &Path, cap: u64) -> Result<(File, u64), ModelError> {
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC);
    }
    let file = options.open(path).map_err(|source| {
        #[cfg(unix)]
        if source.raw_os_error() == Some(libc::ELOOP) {
            return ModelError::NotRegularFile {
                path: path.to_owned(),
                kind: "a symbolic link",
            };
        }
        ModelError::Io {
            path: path.to_owned(),
            source,
        }
    })?;
    let meta = file.metadata().map_err(|source| ModelError::Io {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ModelError::NotRegularFile {
            path: path.to_owned(),
            kind: kind_of(&meta.file_type()),
        });
    }
    if meta.len() > cap {
        return Err(ModelError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
            cap,
        });
    }
    Ok((file, meta.len()))
}

/// What a file that is not a regular one is, for messages.
fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if t.is_dir() {
        "a folder"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The whole of `path`, checked as [`open_checked`] does; never more than `cap` bytes, even
/// if the file grows while it is read.
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ModelError> {
    let (file, len) = open_checked(path, cap)?;
    let io = |source| ModelError::Io {
        path: path.to_owned(),
        source,
    };
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|_| io(std::io::ErrorKind::OutOfMemory.into()))?;
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(ModelError::TooLarge {
            path: path.to_owned(),
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

/// Parses the JSON file at `path` (at most `cap` bytes) into `T`; errors never quote content.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    cap: u64,
) -> Result<T, ModelError> {
    let bytes = read_capped(path, cap)?;
    serde_json::from_slice(&bytes).map_err(|e| ModelError::Json {
        path: path.to_owned(),
        problem: describe_json_error(&e),
    })
}

/// A description of a JSON error by kind and position, without the input's text: serde's
/// messages quote values (`invalid type: string "root:x:0:0..."`), so only a missing field's
/// name (one of ours) is kept.
pub(crate) fn describe_json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Io => "it cannot be read".to_owned(),
        Category::Syntax => format!("it is not valid JSON (at {at})"),
        Category::Eof => format!("it ends early (at {at})"),
        Category::Data => {
            let message = e.to_string();
            let field = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field)
                .filter(|f| {
                    !f.is_empty()
                        && f.len() <= 64
                        && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            match field {
                Some(field) => format!("it lacks the field {field}"),
                None => format!("a value has the wrong type or is out of range (at {at})"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_never_quote_the_input() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            size: usize,
            other: usize,
        }
        for text in [
            r#"{"size": "root:x:0:0:root:/root:/bin/bash"}"#,
            "root:x:0:0:root:/root:/bin/bash",
            r#"{"size": 1, "other": "secret-value"}"#,
            r#"{"size": 1, "#,
        ] {
            let e = serde_json::from_str::<S>(text).expect_err("bad");
            let d = describe_json_error(&e);
            assert!(!d.contains("root") && !d.contains("secret"), "{d}");
        }
        let e = serde_json::from_str::<S>(r#"{"size": 1}"#).expect_err("missing");
        assert_eq!(describe_json_error(&e), "it lacks the field other");
    }
}
