//! Gradient-boosted loss surrogate (in progress).
