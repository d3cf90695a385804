//! Flattened regression trees: each fitted tree is padded to a complete binary tree of its
//! depth and stored as arrays, so a prediction is `depth` branch-free steps
//! (`i = 2i + 1 + (x[f_i] >= t_i)`) and a lookup in the leaf array.
//!
//! A leaf of the original tree above the full depth becomes a subtree whose leaves all carry
//! its value, so the padded tree gives the same prediction for every input. The split rule is
//! forust's: `x < threshold` goes left. Inputs must be finite (features guarantee it); forust's
//! missing-value branches are not kept.

use serde::{Deserialize, Serialize};

/// One complete binary tree of depth `depth`: `2^depth - 1` splits, `2^depth` leaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlatTree {
    pub depth: u32,
    pub feature: Vec<u32>,
    pub threshold: Vec<f64>,
    pub leaf: Vec<f64>,
}

impl FlatTree {
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        for _ in 0..self.depth {
            let go_right = x[self.feature[i] as usize] >= self.threshold[i];
            i = 2 * i + 1 + go_right as usize;
        }
        self.leaf[i - self.feature.len()]
    }

    /// Checks the array lengths and feature indices (for loaded files).
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        if self.depth > 24 {
            return Err(format!("tree depth {} is above 24", self.depth));
        }
        let leaves = 1usize << self.depth;
        if self.feature.len() != leaves - 1 || self.threshold.len() != leaves - 1 || self.leaf.len() != leaves
        {
            return Err(format!(
                "tree of depth {} has inconsistent array lengths",
                self.depth
            ));
        }
        if let Some(f) = self.feature.iter().find(|&&f| f as usize >= n_features) {
            return Err(format!("tree splits on feature {f}, but there are {n_features}"));
        }
        if self.threshold.iter().chain(&self.leaf).any(|v| v.is_nan()) {
            return Err("tree has a NaN threshold or leaf".into());
        }
        Ok(())
    }
}

/// One boosted model: a base score plus the sum of its trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub base: f64,
    pub trees: Vec<FlatTree>,
}

impl Forest {
    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        self.base + self.trees.iter().map(|t| t.predict(x)).sum::<f64>()
    }

    /// Adds this forest's predictions for the row-major rows of `x` (`n_features` wide) to `out`.
    /// Trees in the outer loop keep each tree's arrays in cache across the batch.
    pub fn predict_batch_add(&self, x: &[f64], n_features: usize, out: &mut [f64]) {
        for o in out.iter_mut() {
            *o += self.base;
        }
        let n = out.len().min(x.len() / n_features.max(1));
        let quads = n / 4 * 4;
        for t in &self.trees {
            let (feat, thr) = (&t.feature[..], &t.threshold[..]);
            let internal = feat.len();
            // Four independent walks at a time: their loads overlap instead of waiting in turn.
            for r in (0..quads).step_by(4) {
                let rows: [&[f64]; 4] =
                    std::array::from_fn(|k| &x[(r + k) * n_features..(r + k + 1) * n_features]);
                let mut i = [0usize; 4];
                for _ in 0..t.depth {
                    for k in 0..4 {
                        let go_right = rows[k][feat[i[k]] as usize] >= thr[i[k]];
                        i[k] = 2 * i[k] + 1 + go_right as usize;
                    }
                }
                for k in 0..4 {
                    out[r + k] += t.leaf[i[k] - internal];
                }
            }
            for r in quads..n {
                out[r] += t.predict(&x[r * n_features..(r + 1) * n_features]);
            }
        }
    }
}

/// Flattens a forust tree; adds each split's gain to `gain[feature]`.
pub fn flatten(tree: &forust_ml::tree::Tree, gain: &mut [f64]) -> FlatTree {
    fn depth_of(tree: &forust_ml::tree::Tree, i: usize) -> u32 {
        let n = &tree.nodes[i];
        if n.is_leaf {
            0
        } else {
            1 + depth_of(tree, n.left_child).max(depth_of(tree, n.right_child))
        }
    }
    let depth = depth_of(tree, 0);
    let leaves = 1usize << depth;
    let mut flat = FlatTree {
        depth,
        feature: vec![0; leaves - 1],
        threshold: vec![0.0; leaves - 1],
        leaf: vec![0.0; leaves],
    };
    // (forust node, complete-tree position, level)
    let mut stack = vec![(0usize, 0usize, 0u32)];
    while let Some((ni, pos, level)) = stack.pop() {
        let node = &tree.nodes[ni];
        if node.is_leaf {
            // Every leaf below `pos` at the full depth takes this value.
            let span = 1usize << (depth - level);
            let first = ((pos + 1) << (depth - level)) - 1 - (leaves - 1);
            flat.leaf[first..first + span].fill(node.weight_value as f64);
        } else {
            flat.feature[pos] = node.split_feature as u32;
            flat.threshold[pos] = node.split_value;
            if let Some(g) = gain.get_mut(node.split_feature) {
                *g += node.split_gain as f64;
            }
            stack.push((node.left_child, 2 * pos + 1, level + 1));
            stack.push((node.right_child, 2 * pos + 2, level + 1));
        }
    }
    flat
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_tree_walk() {
        // depth 2: root splits f0 at 1.0; left child is a leaf (5.0) padded; right splits f1 at 0.
        let t = FlatTree {
            depth: 2,
            feature: vec![0, 0, 1],
            threshold: vec![1.0, 0.0, 0.0],
            leaf: vec![5.0, 5.0, -1.0, 2.0],
        };
        assert_eq!(t.predict(&[0.5, 9.0]), 5.0);
        assert_eq!(t.predict(&[-3.0, -9.0]), 5.0);
        assert_eq!(t.predict(&[1.0, -0.5]), -1.0);
        assert_eq!(t.predict(&[2.0, 0.0]), 2.0);
        assert!(t.check(2).is_ok());
        assert!(t.check(1).is_err());
    }
}
