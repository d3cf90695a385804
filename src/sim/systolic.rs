//! Systolic-array GEMM timing (in progress).
