//! Operator dataflow graph (in progress).
