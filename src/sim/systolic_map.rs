//! Mapping ops onto a systolic-array substrate.
//!
//! * **GEMMs** run through [`crate::sim::systolic`] in the substrate's mode (SCALE-Sim-exact
//!   or overlapped) and dataflow; its cycles, stalls and DRAM bytes are taken as they are.
//!   Every operand is priced at its stored width: activations (ifmap, ofmap) at theirs, the
//!   filter at the weights' or the KV cache's (a Q4_0 weight is 4.5 bits); partial sums are
//!   32-bit. The array runs each GEMM in the resolved native type (one MAC per PE per cycle). A GEMM's cost is split for the scheduler into the
//!   first-fold *fill* (prefetchable while the previous GEMM computes, into the other half of
//!   the double buffer: the systolic model sizes it to fit), the steady phase (array busy,
//!   DRAM reads and writes streaming) and the final *drain* (last outputs written back).
//! * **Attention GEMMs** batch the heads: the `H / G` query heads of one KV group are stacked
//!   as rows of one GEMM against their shared K (or V), so the cache is read once per group,
//!   as the graph's KV bytes say. Causal prefill computes the full P x P score matrix (the
//!   array does not skip the masked half; the graph's FLOPs count the triangle).
//! * **MoE projections** stand for several matrices of one shape: `s` shared experts run as
//!   a batch of `s` GEMMs; routed experts as one GEMM per expert the batch touches (the
//!   graph's expected count, rounded up), each over its share of the `t * active` rows.
//! * **Vector ops** (norms, softmax, activations, RoPE, residual adds) run on the vector unit
//!   at `vector.ops_per_cycle` FLOPs per cycle; their weights and any activations that do not
//!   fit the SRAM stream over the DRAM channels.
//! * **Memory ops**: the embedding gather reads its rows over the read channel, the KV write
//!   writes the new keys and values over the write channel.
//! * **Dequantisation**: a GEMM whose filter is stored narrower than its arithmetic (int4 or
//!   GGUF weights on an int8 array) has it dequantised by the vector unit as it streams in,
//!   `vector.dequantise_ops` per stored byte at `vector.ops_per_cycle` times
//!   `efficiency.memory`: the steady phase lasts at least that pass (the vector unit feeding
//!   the array; its contention with other vector ops is not modelled).
//! * **Efficiencies** apply as in the roofline: the array and the vector unit reach
//!   `efficiency.compute` of their rate (compute cycles / eta_c), DRAM transfers run at
//!   `efficiency.memory` of the bandwidth (the GEMM model's fill, streams and drain included;
//!   [`crate::sim::systolic::SystolicArray::with_efficiency`]). At 1 and 1 (every shipped
//!   systolic file) the cycle model is unchanged and SCALE-Sim-exact in that mode. The kernel
//!   overhead is added to the unit's busy time.
//! * **Energy** = MACs x MAC energy + SRAM bytes x SRAM energy + DRAM bytes x DRAM energy (the
//!   GEMM model's action counts) + vector ops x vector-op energy; leakage x time is added per
//!   phase from the schedule.

use super::cost::{Cost, Mapper, Traffic, array, is_attention, systolic_actions};
use super::result::{Energy, Resource};
use crate::graph::{Op, OpKind, Unit};
use crate::substrate::Systolic;
use crate::units::{Bytes, Joules, Seconds};

/// Cost of a kernel (always one op on systolic substrates).
pub fn cost(mapper: &Mapper<'_>, s: &Systolic, ops: &[&Op], heads_per_group: u64) -> Cost {
    let op = ops[0];
    let clock = s.clock.get();
    let eff = mapper.eff_for(ops);
    let rd = s.dram_read.get() * eff.memory;
    let wr = s.dram_write.get() * eff.memory;
    let overhead = eff.kernel_overhead;
    let t = Traffic::of(ops);
    let (ai, ao) = mapper.dram_activations(&t);
    let all = t.weights + t.kv_read + t.kv_write + t.activations();
    match (op.kind, op.unit) {
        (OpKind::Gemm { m, n, k, batch }, _) => {
            let mut copies_w = 1u64;
            let (batch, m) = if heads_per_group > 1 && batch % heads_per_group == 0 {
                (batch / heads_per_group, m * heads_per_group)
            } else if let Some((copies, rows)) = mapper.weight_groups(op) {
                // A projection standing for several matrices (a mixture's experts) runs as
                // that many GEMMs over their share of the rows.
                copies_w = copies;
                (copies, rows)
            } else {
                (batch, m)
            };
            let attention = is_attention(op);
            let (ifmap, filter) = if attention {
                (mapper.activation_bytes, mapper.kv_bytes)
            } else {
                (mapper.activation_bytes, mapper.weight_bytes)
            };
            let arr = match mapper.arrays {
                Some((w, a)) if eff == mapper.eff() => {
                    if attention {
                        a
                    } else {
                        w
                    }
                }
                _ => array(s, ifmap)
                    .with_efficiency(eff.compute, eff.memory)
                    .with_filter_word(Bytes::new(filter)),
            };
            let g = arr.gemm_batched(batch, m, n, k);
            // The array cannot do more than one MAC per PE per cycle; bias adds count as MACs.
            let pes = (s.rows * s.cols) as f64;
            let floor_c = op.flops.get() / (2.0 * pes) / eff.compute;
            // The vector unit dequantises a narrow filter as it streams in, beside the array.
            let dequant = mapper.dequantise_ops(op);
            let dequant_c = mapper.dequantise_time(dequant) * clock;
            // MACs beyond the array model's count (bias adds) run after it.
            let extra = (floor_c - g.compute_cycles.get()).max(0.0);
            let compute_c = g.compute_cycles.get() + extra;
            let fill_c = g.fill_cycles.get();
            let drain_c = g.drain_cycles.get();
            let steady_c = (g.cycles.get() - fill_c - drain_c + extra).max(dequant_c);
            // Biases are weights the GEMM model does not see: streamed in beside the matrix.
            let matrices = (copies_w * k * n) as f64 * mapper.weight_bytes;
            let bias = if heads_per_group > 1 {
                0.0
            } else {
                (t.weights - matrices).max(0.0)
            };
            let reads_c = (g.dram_read_bytes.get() + bias) / rd;
            let writes_c = g.dram_write_bytes.get() / wr;
            let e = g.energy_breakdown(&systolic_actions(s), s.clock);
            let mac_energy =
                s.energy.mac * (op.flops.get() / 2.0).max(g.macs as f64) + s.energy.vector_op * dequant;
            Cost {
                resource: Some(Resource::Matrix),
                compute: Seconds::new(compute_c / clock),
                memory: Seconds::new(reads_c.max(writes_c).max(dequant_c) / clock),
                overhead,
                fill: Seconds::new(fill_c / clock),
                main: overhead + Seconds::new(steady_c / clock),
                stream_read: Seconds::new((reads_c - fill_c).max(0.0) / clock),
                stream_write: Seconds::new((writes_c - drain_c).max(0.0) / clock),
                drain: Seconds::new(drain_c / clock),
                dram_bytes: g.dram_read_bytes + g.dram_write_bytes + Bytes::new(bias),
                energy: Energy {
                    compute: mac_energy,
                    onchip: e.sram,
                    dram: e.dram + s.energy.dram_byte * bias,
                    static_: Joules::ZERO,
                },
            }
        }
        (_, unit) => {
            let reads = t.weights + t.kv_read + ai;
            let writes = t.kv_write + ao;
            let (compute_c, vector_ops, resource) = match unit {
                Unit::Vector => (
                    op.flops.get() / s.vector_ops_per_cycle / eff.compute,
                    op.flops.get(),
                    Resource::Vector,
                ),
                Unit::Matrix => (
                    op.flops.get() / (2.0 * (s.rows * s.cols) as f64) / eff.compute,
                    0.0,
                    Resource::Matrix,
                ),
                // no collective reaches an engine (the placed graph is the system path's)
                Unit::Memory | Unit::Link => (0.0, 0.0, Resource::Dma),
            };
            let (reads_c, writes_c) = (reads / rd, writes / wr);
            Cost {
                resource: Some(resource),
                compute: Seconds::new(compute_c / clock),
                memory: Seconds::new(reads_c.max(writes_c) / clock),
                overhead,
                fill: Seconds::ZERO,
                main: overhead + Seconds::new(compute_c / clock),
                stream_read: Seconds::new(reads_c / clock),
                stream_write: Seconds::new(writes_c / clock),
                drain: Seconds::ZERO,
                dram_bytes: Bytes::new(reads + writes),
                energy: Energy {
                    compute: s.energy.vector_op * vector_ops,
                    onchip: s.energy.sram_byte * all,
                    dram: s.energy.dram_byte * (reads + writes),
                    static_: Joules::ZERO,
                },
            }
        }
    }
}
