//! Cost engines: map a graph onto a substrate and produce cycles, time and energy.
//! Architecture invariant: no I/O here.

pub mod ring;
pub mod ring_adapter;
pub mod systolic;
