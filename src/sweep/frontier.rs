//! An online two-objective Pareto frontier (both minimised), kept in a B-tree keyed by the
//! first objective: inserting is O(log n) amortised, and memory is the frontier's size, not
//! the number of candidates seen.

use std::collections::BTreeMap;

/// A point of the frontier: (x, y) and the candidate it came from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrontPoint {
    pub x: f64,
    pub y: f64,
    pub id: u64,
}

/// Keys must be totally ordered: x as ordered bits, then the id for ties.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key(u64, u64);

fn key_bits(x: f64) -> u64 {
    // total order for finite non-negative and negative floats
    let b = x.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

#[derive(Clone, Debug, Default)]
pub struct Frontier {
    points: BTreeMap<Key, FrontPoint>,
}

impl Frontier {
    pub fn new() -> Self {
        Frontier::default()
    }

    /// Offers a point; returns whether it joined the frontier. A point is dominated by any
    /// point with x <= its x and y <= its y (ties: the earlier id stays).
    pub fn insert(&mut self, p: FrontPoint) -> bool {
        self.insert_with(p, |_| {})
    }

    /// [`insert`](Frontier::insert), telling `removed` the id of every point the new one
    /// dominates (so a caller keeping data per frontier point drops just those).
    pub fn insert_with(&mut self, p: FrontPoint, mut removed: impl FnMut(u64)) -> bool {
        if !p.x.is_finite() || !p.y.is_finite() {
            return false;
        }
        let k = Key(key_bits(p.x), p.id);
        // the best (lowest y) point with x <= p.x is the last one at or before k
        if let Some((_, q)) = self.points.range(..=k).next_back() {
            if q.y <= p.y {
                return false;
            }
        }
        // remove points with x >= p.x and y >= p.y
        // (points with the same x but an earlier id sit just before k: start at id 0)
        let from = Key(k.0, 0);
        let dominated: Vec<Key> = self
            .points
            .range(from..)
            .take_while(|(_, q)| q.y >= p.y)
            .map(|(k, _)| *k)
            .collect();
        for d in dominated {
            if let Some(q) = self.points.remove(&d) {
                removed(q.id);
            }
        }
        self.points.insert(k, p);
        true
    }

    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The frontier in increasing x (and so decreasing y).
    pub fn points(&self) -> impl Iterator<Item = &FrontPoint> {
        self.points.values()
    }

    /// The best y among frontier points with x <= limit.
    pub fn best_within(&self, limit: f64) -> Option<&FrontPoint> {
        self.points.values().take_while(|p| p.x <= limit).last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hand_computed() {
        let mut f = Frontier::new();
        for (i, (x, y)) in [
            (3.0, 1.0),
            (1.0, 3.0),
            (2.0, 2.0),
            (2.5, 2.5),
            (1.0, 4.0),
            (4.0, 0.5),
            (2.0, 1.5),
        ]
        .iter()
        .enumerate()
        {
            f.insert(FrontPoint {
                x: *x,
                y: *y,
                id: i as u64,
            });
        }
        let got: Vec<(f64, f64)> = f.points().map(|p| (p.x, p.y)).collect();
        assert_eq!(got, [(1.0, 3.0), (2.0, 1.5), (3.0, 1.0), (4.0, 0.5)]);
        assert_eq!(f.best_within(2.9).unwrap().y, 1.5);
        assert!(f.best_within(0.5).is_none());
    }

    proptest! {
        #[test]
        fn equals_brute_force(pts in proptest::collection::vec((0u32..50, 0u32..50), 1..200)) {
            let mut f = Frontier::new();
            for (i, (x, y)) in pts.iter().enumerate() {
                f.insert(FrontPoint { x: *x as f64, y: *y as f64, id: i as u64 });
            }
            let mut brute: Vec<(u32, u32)> = pts
                .iter()
                .enumerate()
                .filter(|(i, (x, y))| !pts.iter().enumerate().any(|(j, (a, b))| {
                    (a <= x && b <= y) && (a < x || b < y || j < *i)
                }))
                .map(|(_, p)| *p)
                .collect();
            brute.sort();
            let got: Vec<(u32, u32)> = f.points().map(|p| (p.x as u32, p.y as u32)).collect();
            prop_assert_eq!(got, brute);
        }
    }
}
