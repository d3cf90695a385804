//! The description language: unit-carrying expressions used inside every YAML file.
