//! The one integration-test binary.
mod systolic;
