//! The one place that reads YAML (serde-saphyr), turning its errors into located diagnostics.

use crate::diag::LocatedError;
use serde::de::DeserializeOwned;

/// Deserializes `src` (the contents of `file`) into `T`, with a located error on failure.
pub fn from_str<T: DeserializeOwned>(src: &str, file: &str) -> Result<T, LocatedError> {
    serde_saphyr::from_str(src).map_err(|e| {
        let message = e.to_string();
        let first = message.lines().next().unwrap_or("invalid YAML").to_string();
        match e.location() {
            Some(loc) => LocatedError::from_line_col(
                file,
                src,
                loc.line() as usize,
                loc.column() as usize,
                first,
                None,
            ),
            None => LocatedError::new(file, src, (0, 0), first, None),
        }
    })
}
