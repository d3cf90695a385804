//! The analytical per-GEMM model of the corrected ring, as action counts.
//!
//! An (M x K).(K x N) product on `n_cores` cores of `pe` MACs each, the (K x N) operand held
//! column-wise in the cores' local memory (WMEM for weights, the KV cache for K and V):
//! ```text
//! n_cols  = ceil(N / n_cores)          columns per core
//! active  = ceil(N / n_cols)           cores that hold a column
//! k_tiles = ceil(K / pe)
//! compute = k_tiles * M * n_cols
//! reads   = ceil(n_cols * pe / port_B) port reads per K tile (port_B = 16 B)
//! stall   = reads + (k_tiles - 1) * max(0, reads - M * n_cols)   (first tile, then port-bound tiles)
//! cycles  = compute + stall
//! MACs    = M * (k_tiles * pe) * (active * n_cols)                (padded)
//! operand = n_cols * k_tiles * ceil(pe / port_B) * active * port_B bytes read
//! acc     = M * active * n_cols * (2 * k_tiles - 1)               accumulator accesses
//! head    = M*K + M*N                                             activation bytes in/out
//! ```
//! Energies are these counts times the per-action energies (Accelergy-style), so one GEMM
//! function serves weight GEMMs (operand = WMEM) and attention GEMMs (operand = KV cache).

/// Action counts of one GEMM (or a sum of them).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct GemmCount {
    pub cycles: f64,
    pub macs: f64,
    pub operand_bytes: f64,
    pub acc_accesses: f64,
    pub head_bytes: f64,
}

/// `ceil(a / b)`, `b` >= 1: a shift when `b` is a power of two (core counts, MACs per VAC and
/// the port usually are), a division otherwise; the same value either way.
#[inline]
pub(crate) fn ceil_div(a: u64, b: u64) -> u64 {
    if b.is_power_of_two() {
        (a >> b.trailing_zeros()) + u64::from(a & (b - 1) != 0)
    } else {
        a.div_ceil(b)
    }
}

/// `x as f64` through the signed conversion (one instruction on x86-64; the unsigned one is a
/// sequence), exact to the same value for every count below 2^63.
#[inline]
fn to_f64(x: u64) -> f64 {
    match i64::try_from(x) {
        Ok(i) => i as f64,
        Err(_) => x as f64,
    }
}

/// The GEMM model above; `m` may be fractional (expected MoE rows). `k`, `n` >= 1.
#[inline]
pub(crate) fn gemm(m: f64, k: u64, n: u64, n_cores: u64, pe: u64, port_bytes: u64) -> GemmCount {
    let n_cols = ceil_div(n, n_cores);
    let active = ceil_div(n, n_cols);
    let k_tiles = ceil_div(k, pe);
    let n_cols_f = to_f64(n_cols);
    let k_tiles_f = to_f64(k_tiles);
    let compute = k_tiles_f * m * n_cols_f;
    let reads = to_f64(ceil_div(n_cols * pe, port_bytes));
    let stall = reads + (k_tiles_f - 1.0) * (reads - m * n_cols_f).max(0.0);
    let active_cols = to_f64(active * n_cols);
    GemmCount {
        cycles: compute + stall,
        macs: m * to_f64(k_tiles * pe) * active_cols,
        operand_bytes: n_cols_f * k_tiles_f * to_f64(ceil_div(pe, port_bytes) * port_bytes) * to_f64(active),
        acc_accesses: m * active_cols * (2.0 * k_tiles_f - 1.0),
        head_bytes: m * to_f64(k + n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_gemm_by_hand() {
        // M=1, K=40, N=10 on 4 cores of pe=16, 16-byte port:
        // n_cols = ceil(10/4) = 3; active = ceil(10/3) = 4; k_tiles = ceil(40/16) = 3
        // compute = 3*1*3 = 9; reads = ceil(3*16/16) = 3
        // stall = 3 + (3-1)*max(0, 3 - 1*3) = 3; cycles = 12
        // MACs = 1 * (3*16) * (4*3) = 576 (padded from 400)
        // operand = 3 * 3 * ceil(16/16)*16 * 4 = 576 B; acc = 1*12*(2*3-1) = 60; head = 40+10 = 50
        let g = gemm(1.0, 40, 10, 4, 16, 16);
        assert_eq!(
            g,
            GemmCount {
                cycles: 12.0,
                macs: 576.0,
                operand_bytes: 576.0,
                acc_accesses: 60.0,
                head_bytes: 50.0
            }
        );
    }

    #[test]
    fn wide_pe_is_port_bound() {
        // M=1, K=128, N=8, 8 cores, pe=64: n_cols=1, active=8, k_tiles=2, compute=2
        // reads = ceil(64/16) = 4; stall = 4 + 1*max(0, 4-1) = 7; cycles = 9
        // operand = 1*2*(4*16)*8 = 1024 B = K*N exactly; MACs = 1*128*8 = 1024
        let g = gemm(1.0, 128, 8, 8, 64, 16);
        assert_eq!(g.cycles, 9.0);
        assert_eq!(g.operand_bytes, 1024.0);
        assert_eq!(g.macs, 1024.0);
        assert_eq!(g.acc_accesses, 8.0 * 3.0);
    }

    #[test]
    fn batching_hides_the_port() {
        // same as above with M=4: compute = 2*4*1 = 8, stall = 4 + 1*max(0, 4-4) = 4 -> 12
        let g = gemm(4.0, 128, 8, 8, 64, 16);
        assert_eq!(g.cycles, 12.0);
        // weights are read once whatever M is
        assert_eq!(g.operand_bytes, 1024.0);
        assert_eq!(g.head_bytes, 4.0 * 136.0);
    }
}
