//! The one integration-test binary.
mod law;
