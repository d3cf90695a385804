//! The one place that reads YAML (serde-saphyr), turning its errors into located diagnostics.
