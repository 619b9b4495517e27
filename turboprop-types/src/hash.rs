//! Content hashes: the 32-byte digests turboprop uses to tell whether a file or chunk changed.
//!
//! The digest is BLAKE3 ([`ContentHash::of`]): the hash `tp index` records for every file and
//! chunk, so a library user's records compare with the CLI's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 32-byte content digest, printed and serialized as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        ContentHash(bytes)
    }

    /// The raw digest bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The BLAKE3 digest of `data`: what `tp index` records for a file's and a chunk's
    /// content, and compares to tell whether they changed.
    ///
    /// ```
    /// use turboprop_types::ContentHash;
    ///
    /// // The published BLAKE3 digest of the empty input.
    /// assert_eq!(
    ///     ContentHash::of(b"").to_hex(),
    ///     "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    /// );
    /// assert_ne!(ContentHash::of(b"a"), ContentHash::of(b"b"));
    /// ```
    pub fn of(data: &[u8]) -> Self {
        ContentHash(*blake3::hash(data).as_bytes())
    }

    /// The digest as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            // Writing to a String cannot fail.
            let _ = write!(s, "{b:02x}");
        }
        s
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A string that is not 64 hex characters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid content hash {0:?}: expected 64 hex characters")]
pub struct HashParseError(String);

impl FromStr for ContentHash {
    type Err = HashParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return Err(HashParseError(s.to_owned()));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0]).ok_or_else(|| HashParseError(s.to_owned()))?;
            let lo = hex_digit(pair[1]).ok_or_else(|| HashParseError(s.to_owned()))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(ContentHash(out))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for ContentHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = ContentHash::of(b"pot");
        let parsed: ContentHash = h.to_hex().parse().expect("valid hex");
        assert_eq!(parsed, h);
        assert_ne!(ContentHash::of(b"pot"), ContentHash::of(b"pit"));
    }

    #[test]
    fn rejects_bad_hex() {
        assert!("zz".parse::<ContentHash>().is_err());
        assert!("g".repeat(64).parse::<ContentHash>().is_err());
    }
}
