//! Flattened regression trees: each fitted tree is padded to a complete binary tree of its
//! depth and stored as arrays, so a prediction is `depth` branch-free steps
//! (`i = 2i + 1 + (x[f_i] >= t_i)`) and a lookup in the leaf array.
//!
//! A leaf of the original tree above the full depth becomes a subtree whose leaves all carry
//! its value, so the padded tree gives the same prediction for every input. The split rule is
//! forust's: `x < threshold` goes left. Inputs must be finite (features guarantee it); forust's
//! missing-value branches are not kept.

use crate::packed;
use serde::{Deserialize, Serialize};

/// One split of a flattened tree: 16 bytes, so a step of the walk touches one cache line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub threshold: f64,
    pub feature: u32,
}

/// One complete binary tree of depth `depth`: `2^depth - 1` splits, `2^depth` leaves.
/// Saved as parallel arrays `feature`, `threshold`, `leaf`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FlatTreeRepr", into = "FlatTreeRepr")]
pub struct FlatTree {
    depth: u32,
    /// `2^depth - 1` splits plus one unused entry, so the length is a power of two and
    /// `i & (len - 1)` indexes it without a bounds check.
    splits: Vec<Split>,
    leaf: Vec<f64>,
}

/// Width of a padded feature row for [`Forest::predict_block`]: feature indices are masked
/// to `ROW - 1`, which needs no bounds check.
pub const ROW: usize = 256;
/// Rows walked together by [`Forest::predict_block`].
pub const BLOCK: usize = 8;

#[derive(Serialize, Deserialize)]
struct FlatTreeRepr {
    depth: u32,
    #[serde(with = "packed::u32s")]
    feature: Vec<u32>,
    #[serde(with = "packed::f64s")]
    threshold: Vec<f64>,
    #[serde(with = "packed::f64s")]
    leaf: Vec<f64>,
}

impl From<FlatTree> for FlatTreeRepr {
    fn from(t: FlatTree) -> Self {
        FlatTreeRepr {
            depth: t.depth,
            feature: t.internal().iter().map(|s| s.feature).collect(),
            threshold: t.internal().iter().map(|s| s.threshold).collect(),
            leaf: t.leaf,
        }
    }
}

impl TryFrom<FlatTreeRepr> for FlatTree {
    type Error = String;
    fn try_from(r: FlatTreeRepr) -> Result<Self, String> {
        FlatTree::new(r.depth, &r.feature, &r.threshold, r.leaf)
    }
}

impl FlatTree {
    /// A tree from its arrays; checks their lengths and values.
    pub fn new(depth: u32, feature: &[u32], threshold: &[f64], leaf: Vec<f64>) -> Result<FlatTree, String> {
        if depth > 24 {
            return Err(format!("tree depth {depth} is above 24"));
        }
        let leaves = 1usize << depth;
        if feature.len() != leaves - 1 || threshold.len() != leaves - 1 || leaf.len() != leaves {
            return Err(format!("tree of depth {depth} has inconsistent array lengths"));
        }
        if threshold.iter().chain(&leaf).any(|v| v.is_nan()) {
            return Err("tree has a NaN threshold or leaf".into());
        }
        let mut splits: Vec<Split> = feature
            .iter()
            .zip(threshold)
            .map(|(&feature, &threshold)| Split { threshold, feature })
            .collect();
        splits.push(Split {
            threshold: 0.0,
            feature: 0,
        });
        Ok(FlatTree { depth, splits, leaf })
    }

    /// The real splits (without the padding entry).
    fn internal(&self) -> &[Split] {
        &self.splits[..self.splits.len() - 1]
    }

    pub fn depth(&self) -> u32 {
        self.depth
    }

    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0usize;
        for _ in 0..self.depth {
            let s = self.splits[i];
            i = 2 * i + 1 + (x[s.feature as usize] >= s.threshold) as usize;
        }
        self.leaf[i + 1 - self.splits.len()]
    }

    /// Checks that every split's feature index is below `n_features` (for loaded files).
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        match self
            .internal()
            .iter()
            .find(|s| s.feature as usize >= n_features.min(ROW))
        {
            Some(s) => Err(format!(
                "tree splits on feature {}, but there are {n_features}",
                s.feature
            )),
            None => Ok(()),
        }
    }
}

/// One boosted model: a base score plus the sum of its trees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Forest {
    pub base: f64,
    pub trees: Vec<FlatTree>,
}

impl Forest {
    /// Checks a loaded forest: a finite base score and every tree's split features below
    /// `n_features`; the error names the tree.
    pub fn check(&self, n_features: usize) -> Result<(), String> {
        if !self.base.is_finite() {
            return Err("base score is not finite".into());
        }
        for (t, tree) in self.trees.iter().enumerate() {
            tree.check(n_features).map_err(|e| format!("tree {t}: {e}"))?;
        }
        Ok(())
    }

    #[inline]
    pub fn predict(&self, x: &[f64]) -> f64 {
        // Same order of additions as the batch walk, so both give identical bits.
        self.trees.iter().fold(self.base, |acc, t| acc + t.predict(x))
    }

    /// The prediction for one padded row, bit for bit what [`Forest::predict_block`] gives
    /// it: [`BLOCK`] trees walked together (their loads overlap, as the rows' do in the block
    /// walk), their leaves added in tree order. A search predicts one candidate at a time;
    /// the block walk spent seven of its eight walks on padding rows.
    pub fn predict_row(&self, row: &[f64; ROW]) -> f64 {
        let mut acc = 0.0;
        acc += self.base;
        for chunk in self.trees.chunks(BLOCK) {
            let mut i = [0usize; BLOCK];
            let depth = chunk.iter().map(|t| t.depth).max().unwrap_or(0);
            for level in 0..depth {
                for (k, t) in chunk.iter().enumerate() {
                    if level < t.depth {
                        let mask = t.splits.len() - 1;
                        let s = t.splits[i[k] & mask];
                        let x = row[s.feature as usize & (ROW - 1)];
                        i[k] = 2 * i[k] + 1 + (x >= s.threshold) as usize;
                    }
                }
            }
            for (k, t) in chunk.iter().enumerate() {
                acc += t.leaf[i[k] - (t.splits.len() - 1)];
            }
        }
        acc
    }

    /// Adds this forest's predictions for [`BLOCK`] padded rows to `out`. Every tree walks
    /// the whole block before the next: the block and one tree sit in L1, and the
    /// [`BLOCK`] independent walks overlap their loads. Features must be below [`ROW`]
    /// (guaranteed for checked trees).
    pub fn predict_block(&self, rows: &[[f64; ROW]; BLOCK], out: &mut [f64; BLOCK]) {
        for o in out.iter_mut() {
            *o += self.base;
        }
        for t in &self.trees {
            let mask = t.splits.len() - 1;
            let splits = &t.splits[..=mask];
            let mut i = [0usize; BLOCK];
            for _ in 0..t.depth {
                for k in 0..BLOCK {
                    let s = splits[i[k] & mask];
                    let x = rows[k][s.feature as usize & (ROW - 1)];
                    i[k] = 2 * i[k] + 1 + (x >= s.threshold) as usize;
                }
            }
            for k in 0..BLOCK {
                out[k] += t.leaf[i[k] - mask];
            }
        }
    }
}

/// Flattens a forust tree; adds each split's gain to `gain[feature]`. Fails on a NaN leaf or
/// split value, or a tree deeper than 24.
pub fn flatten(tree: &forust_ml::tree::Tree, gain: &mut [f64]) -> Result<FlatTree, String> {
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
    let mut feature = vec![0u32; leaves - 1];
    let mut threshold = vec![0.0; leaves - 1];
    let mut leaf = vec![0.0; leaves];
    // (forust node, complete-tree position, level)
    let mut stack = vec![(0usize, 0usize, 0u32)];
    while let Some((ni, pos, level)) = stack.pop() {
        let node = &tree.nodes[ni];
        if node.is_leaf {
            // Every leaf below `pos` at the full depth takes this value.
            let span = 1usize << (depth - level);
            let first = ((pos + 1) << (depth - level)) - 1 - (leaves - 1);
            leaf[first..first + span].fill(node.weight_value as f64);
        } else {
            feature[pos] = node.split_feature as u32;
            threshold[pos] = node.split_value;
            if let Some(g) = gain.get_mut(node.split_feature) {
                *g += node.split_gain as f64;
            }
            stack.push((node.left_child, 2 * pos + 1, level + 1));
            stack.push((node.right_child, 2 * pos + 2, level + 1));
        }
    }
    FlatTree::new(depth, &feature, &threshold, leaf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_tree_walk() {
        // depth 2: root splits f0 at 1.0; left child is a leaf (5.0) padded; right splits f1 at 0.
        let t = FlatTree::new(2, &[0, 0, 1], &[1.0, 0.0, 0.0], vec![5.0, 5.0, -1.0, 2.0]).unwrap();
        assert_eq!(t.predict(&[0.5, 9.0]), 5.0);
        assert_eq!(t.predict(&[-3.0, -9.0]), 5.0);
        assert_eq!(t.predict(&[1.0, -0.5]), -1.0);
        assert_eq!(t.predict(&[2.0, 0.0]), 2.0);
        assert!(t.check(2).is_ok());
        assert!(t.check(1).is_err());
        assert!(FlatTree::new(2, &[0, 0], &[1.0, 0.0], vec![5.0; 4]).is_err());
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            json,
            r#"{"depth":2,"feature":"u32le:AAAAAAAAAAABAAAA","threshold":"f64le:AAAAAAAA8D8AAAAAAAAAAAAAAAAAAAAA","leaf":"f64le:AAAAAAAAFEAAAAAAAAAUQAAAAAAAAPC/AAAAAAAAAEA="}"#
        );
        assert_eq!(serde_json::from_str::<FlatTree>(&json).unwrap(), t);
        // version 3 of the file: decimal arrays
        let v3 = r#"{"depth":2,"feature":[0,0,1],"threshold":[1.0,0.0,0.0],"leaf":[5.0,5.0,-1.0,2.0]}"#;
        assert_eq!(serde_json::from_str::<FlatTree>(v3).unwrap(), t);
        // packed arrays that are not: wrong tag, bad base64, a partial value
        for bad in [
            r#"{"depth":2,"feature":"f64le:AAAAAAAAAAABAAAA","threshold":[1.0,0.0,0.0],"leaf":[5.0,5.0,-1.0,2.0]}"#,
            r#"{"depth":2,"feature":"u32le:AA*A","threshold":[1.0,0.0,0.0],"leaf":[5.0,5.0,-1.0,2.0]}"#,
            r#"{"depth":2,"feature":"u32le:AAAAAAAAAAABAAA=","threshold":[1.0,0.0,0.0],"leaf":[5.0,5.0,-1.0,2.0]}"#,
        ] {
            assert!(serde_json::from_str::<FlatTree>(bad).is_err(), "{bad}");
        }
        // the block walk equals the single walk
        let forest = Forest {
            base: 0.5,
            trees: vec![t.clone(), t.clone()],
        };
        let mut rows = [[0.0; ROW]; BLOCK];
        for (k, row) in rows.iter_mut().enumerate() {
            row[0] = (k as f64 * 0.37).sin() * 3.0;
            row[1] = (k as f64 * 1.1).cos() * 3.0;
        }
        let mut out = [0.0; BLOCK];
        forest.predict_block(&rows, &mut out);
        for (k, o) in out.iter().enumerate() {
            assert_eq!(*o, forest.predict(&rows[k][..2]));
        }
        // the one-row walk too, over more trees than a chunk and of unequal depths
        let shallow = FlatTree::new(1, &[1], &[0.25], vec![0.125, -0.75]).unwrap();
        let forest = Forest {
            base: -0.3,
            trees: (0..19)
                .map(|i| if i % 3 == 0 { shallow.clone() } else { t.clone() })
                .collect(),
        };
        let mut out = [0.0; BLOCK];
        forest.predict_block(&rows, &mut out);
        for (k, o) in out.iter().enumerate() {
            assert_eq!(o.to_bits(), forest.predict_row(&rows[k]).to_bits());
        }
    }
}
