//! Parametric scaling laws (in progress).
