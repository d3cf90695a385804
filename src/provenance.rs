//! Provenance of outputs: which llmforge produced a result, and which inputs it read.
//!
//! Every JSON output, run manifest, snapshot record and shard manifest names the llmforge
//! version and the content hash of each input file through these two helpers, so the
//! hash format (`sha256:<64 hex digits>`) is the same everywhere.

use sha2::{Digest, Sha256};
use std::{fmt::Write as _, io, path::Path};

/// The llmforge version, as `Cargo.toml` states it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `sha256:<hex>` of a byte string.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// `sha256:<hex>` of a file's contents.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    Ok(sha256(&std::fs::read(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        assert_eq!(
            sha256(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
