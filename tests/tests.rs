//! The one integration-test binary.
mod ring;
