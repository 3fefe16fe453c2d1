//! Isolation forest (Liu, Ting and Zhou, 2008) for any number of features, seeded and
//! reproducible: the anomaly agent's model.
//!
//! Each tree isolates a random subsample of `sample_size` points by splitting on a random
//! feature (one that varies in the node) at a uniform random value between its minimum and
//! maximum, down to depth ceil(log2(sample_size)). A point's score is
//! 2^(-E[h(x)] / c(sample_size)), where h is the path length (plus c(n) for the n points left
//! in the leaf reached) and c(n) the average path length of an unsuccessful binary-search-tree
//! search; higher means more anomalous, 0.5 is unremarkable.
//!
//! [`IsolationForest::score_all`] is where the time goes, and is laid out for the processor:
//! points are scored a block at a time with the block's features stored column by column,
//! every tree walks 16 points of the block at once in a fixed number of steps (their loads
//! overlap), leaves hold their path length ready, and blocks are shared among threads. On ODDS
//! Shuttle that is 7 times scikit-learn's time on one thread (README, Benchmarks).

use crate::rng::SplitMix64;

/// Settings of a forest.
#[derive(Debug, Clone, Copy)]
pub struct ForestOptions {
    pub n_trees: usize,
    pub sample_size: usize,
    pub seed: u64,
}

impl Default for ForestOptions {
    /// The paper's (and scikit-learn's) defaults: 100 trees of 256 points.
    fn default() -> Self {
        Self {
            n_trees: 100,
            sample_size: 256,
            seed: 42,
        }
    }
}

/// One node of a tree, 16 bytes. A split sends a point to `child` when its `feature` is below
/// `value`, else to `child + 1`. A leaf has `child` its own index and `feature` one past the
/// last (the forest's `dim`): block scoring reads that feature from a column of minus
/// infinity, which is below any `value`, so a walk can take a fixed number of steps and stays
/// put once it arrives. A leaf's `value` is the path length of a point that ends there (its
/// depth plus c(size) for the points left in it), computed once at fit.
#[derive(Debug, Clone, Copy)]
struct Node {
    value: f64,
    feature: u32,
    child: u32,
}

impl Node {
    /// The node after this split for a point whose feature is `x` (a NaN goes right, as it
    /// fails `<`).
    fn next(&self, x: f64) -> u32 {
        match x < self.value {
            true => self.child,
            false => self.child + 1,
        }
    }
}

/// Panics unless every node of `tree` leads only to nodes of `tree` (a split to `child` and
/// `child + 1`, a leaf to itself) and reads a feature of at most `dim` (`dim` only at a leaf):
/// what [`IsolationForest::score_into`]'s unchecked walk relies on.
fn check_tree(tree: &[Node], dim: usize) {
    for (at, node) in tree.iter().enumerate() {
        let (feature, child) = (node.feature as usize, node.child as usize);
        let sound = match feature == dim {
            true => child == at && node.value.is_finite(),
            false => feature < dim && child + 1 < tree.len(),
        };
        assert!(sound, "isolation tree node {at} is malformed: {node:?}");
    }
}

/// Points walked through a tree together, step by step: their walks are independent, so the
/// processor overlaps their memory loads instead of waiting on one walk's chain.
const LANES: usize = 16;

/// Points scored per block: every tree walks a block before the next tree, so the tree stays
/// in the L1 cache.
const SCORE_BLOCK: usize = 256;
const _: () = assert!(SCORE_BLOCK.is_multiple_of(LANES));

/// A fitted forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    sample_size: usize,
    dim: usize,
    /// The most splits on any path: every walk has arrived after this many steps.
    depth_limit: usize,
}

/// Average path length of an unsuccessful search in a binary search tree of `n` points:
/// 2 H(n-1) - 2 (n-1) / n, with c(2) = 1 and c(n <= 1) = 0.
pub fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            let harmonic = (n - 1.0).ln() + 0.577_215_664_901_532_9;
            2.0 * harmonic - 2.0 * (n - 1.0) / n
        }
    }
}

impl IsolationForest {
    /// Fits a forest on `points` (rows of equal length; at least one row).
    pub fn fit(points: &[Vec<f64>], options: &ForestOptions) -> Self {
        assert!(!points.is_empty(), "at least one point");
        let dim = points[0].len();
        let sample_size = options.sample_size.clamp(1, points.len());
        let depth_limit = (sample_size as f64).log2().ceil() as usize;
        let mut rng = SplitMix64::new(options.seed);
        let mut indices: Vec<usize> = (0..points.len()).collect();
        let mut grower = Grower {
            points,
            depth_limit,
            dim,
            ranges: Vec::with_capacity(dim),
        };
        let trees = (0..options.n_trees.max(1))
            .map(|_| {
                // Partial Fisher-Yates: the first `sample_size` entries are a sample without replacement.
                for i in 0..sample_size {
                    let j = i + (rng.next_u64() % (indices.len() - i) as u64) as usize;
                    indices.swap(i, j);
                }
                let mut sample = indices[..sample_size].to_vec();
                let mut nodes = vec![grower.leaf(0, 0.0)];
                grower.grow(&mut sample, 0, 0, &mut rng, &mut nodes);
                check_tree(&nodes, dim);
                nodes
            })
            .collect();
        Self {
            trees,
            sample_size,
            dim,
            depth_limit,
        }
    }

    /// Number of features the forest was fitted on.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Anomaly score of one point (higher is more anomalous).
    pub fn score(&self, point: &[f64]) -> f64 {
        let total: f64 = self
            .trees
            .iter()
            .map(|tree| path_length(tree, point, self.dim))
            .sum();
        self.normalise(total)
    }

    /// [`IsolationForest::score`] of every point, in order, on up to `threads` threads (the
    /// same numbers as one at a time: each point's path lengths are summed in tree order).
    pub fn score_all(&self, points: &[Vec<f64>], threads: usize) -> Vec<f64> {
        let mut scores = vec![0.0; points.len()];
        let threads = threads.clamp(1, points.len().div_ceil(SCORE_BLOCK).max(1));
        if threads == 1 {
            self.score_into(points, &mut scores);
            return scores;
        }
        let share = points.len().div_ceil(threads);
        std::thread::scope(|scope| {
            for (points, scores) in points.chunks(share).zip(scores.chunks_mut(share)) {
                scope.spawn(move || self.score_into(points, scores));
            }
        });
        scores
    }

    /// Scores `points` into `scores`, a block at a time: the block's features are laid out
    /// column by column (plus the leaves' column of minus infinity), and every tree walks the
    /// block [`LANES`] points at a time.
    fn score_into(&self, points: &[Vec<f64>], scores: &mut [f64]) {
        let mut columns = vec![f64::NEG_INFINITY; (self.dim + 1) * SCORE_BLOCK];
        for (points, scores) in points
            .chunks(SCORE_BLOCK)
            .zip(scores.chunks_mut(SCORE_BLOCK))
        {
            for (i, point) in points.iter().enumerate() {
                for (f, &x) in point.iter().enumerate() {
                    columns[f * SCORE_BLOCK + i] = x;
                }
            }
            scores.fill(0.0);
            for tree in &self.trees {
                for (base, totals) in (0..).step_by(LANES).zip(scores.chunks_mut(LANES)) {
                    let mut at = [0u32; LANES];
                    for _ in 0..self.depth_limit {
                        for (lane, at) in at.iter_mut().enumerate() {
                            // SAFETY: `check_tree` proved at fit that every node's targets are
                            // nodes of its tree and every feature at most `dim`, and
                            // `base + lane < SCORE_BLOCK` (a multiple of LANES), so both
                            // indices are in bounds. Unchecked, the walk takes half the time.
                            let node = unsafe { *tree.get_unchecked(*at as usize) };
                            let column = node.feature as usize * SCORE_BLOCK + base + lane;
                            *at = node.next(unsafe { *columns.get_unchecked(column) });
                        }
                    }
                    for (total, at) in totals.iter_mut().zip(at) {
                        *total += tree[at as usize].value;
                    }
                }
            }
            for score in scores.iter_mut() {
                *score = self.normalise(*score);
            }
        }
    }

    /// The score of a point whose path lengths sum to `total`.
    fn normalise(&self, total: f64) -> f64 {
        let mean_path = total / self.trees.len() as f64;
        2f64.powf(-mean_path / average_path_length(self.sample_size).max(f64::MIN_POSITIVE))
    }
}

/// What growing a tree needs besides the tree: the points, the depth limit and a buffer.
struct Grower<'a> {
    points: &'a [Vec<f64>],
    depth_limit: usize,
    dim: usize,
    /// The varying features of the node being split, with their ranges.
    ranges: Vec<(usize, f64, f64)>,
}

impl Grower<'_> {
    /// The leaf at index `at` whose walks have length `value`.
    fn leaf(&self, at: usize, value: f64) -> Node {
        Node {
            value,
            feature: self.dim as u32,
            child: at as u32,
        }
    }

    /// Makes `nodes[here]` the subtree over `rows`: a split with its two children appended,
    /// or a leaf.
    fn grow(
        &mut self,
        rows: &mut [usize],
        here: usize,
        depth: usize,
        rng: &mut SplitMix64,
        nodes: &mut Vec<Node>,
    ) {
        nodes[here] = self.leaf(here, depth as f64 + average_path_length(rows.len()));
        if rows.len() <= 1 || depth >= self.depth_limit {
            return;
        }
        let points = self.points;
        self.ranges.clear();
        let ranges = (0..self.dim).filter_map(|f| {
            let (lo, hi) = rows
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                    (lo.min(points[r][f]), hi.max(points[r][f]))
                });
            (hi > lo).then_some((f, lo, hi))
        });
        self.ranges.extend(ranges);
        if self.ranges.is_empty() {
            return;
        }
        let (feature, lo, hi) = self.ranges[(rng.next_u64() % self.ranges.len() as u64) as usize];
        let threshold = lo + rng.next_f64() * (hi - lo);
        let mut split = 0;
        for i in 0..rows.len() {
            if points[rows[i]][feature] < threshold {
                rows.swap(i, split);
                split += 1;
            }
        }
        let (left, right) = (nodes.len(), nodes.len() + 1);
        nodes.extend([self.leaf(left, 0.0), self.leaf(right, 0.0)]);
        nodes[here] = Node {
            value: threshold,
            feature: feature as u32,
            child: left as u32,
        };
        let (left_rows, right_rows) = rows.split_at_mut(split);
        self.grow(left_rows, left, depth + 1, rng, nodes);
        self.grow(right_rows, right, depth + 1, rng, nodes);
    }
}

/// The path length of `point` in `tree` (of a forest on `dim` features): the leaf's value.
fn path_length(tree: &[Node], point: &[f64], dim: usize) -> f64 {
    let mut node = tree[0];
    while node.feature as usize != dim {
        node = tree[node.next(point[node.feature as usize]) as usize];
    }
    node.value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_path_length_matches_the_paper() {
        // c(256) = 2 (ln 255 + 0.5772) - 2 * 255 / 256 = 10.2448 (the normaliser in Liu et al.).
        assert!((average_path_length(256) - 10.2448).abs() < 1e-3);
        assert_eq!(average_path_length(2), 1.0);
        assert_eq!(average_path_length(1), 0.0);
    }

    /// A 2-D grid of inliers with two planted outliers: the outliers score highest, the
    /// inliers near 0.5 or below, and the same seed gives the same scores.
    #[test]
    fn planted_outliers_score_highest_and_runs_repeat() {
        let mut points: Vec<Vec<f64>> = (0..400)
            .map(|i| vec![(i % 20) as f64 * 0.1, (i / 20) as f64 * 0.1])
            .collect();
        points.push(vec![10.0, 10.0]);
        points.push(vec![-8.0, 1.0]);
        let forest = IsolationForest::fit(&points, &ForestOptions::default());
        let scores: Vec<f64> = points.iter().map(|p| forest.score(p)).collect();
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        assert_eq!(
            {
                let mut top = order[..2].to_vec();
                top.sort();
                top
            },
            vec![400, 401]
        );
        assert!(
            scores[400] > 0.7 && scores[401] > 0.7,
            "{} {}",
            scores[400],
            scores[401]
        );
        assert!(scores[..400].iter().all(|&s| s < 0.62));
        let again = IsolationForest::fit(&points, &ForestOptions::default());
        assert_eq!(again.score(&points[7]), scores[7]);
    }

    /// Scoring in blocks on several threads gives each point's one-at-a-time score exactly.
    #[test]
    fn scoring_all_at_once_equals_one_at_a_time() {
        let points: Vec<Vec<f64>> = (0..1_000)
            .map(|i| {
                vec![
                    ((i * 7919) % 1_000) as f64,
                    ((i * 104_729) % 313) as f64,
                    (i % 7) as f64,
                ]
            })
            .collect();
        let forest = IsolationForest::fit(&points, &ForestOptions::default());
        let one_at_a_time: Vec<f64> = points.iter().map(|p| forest.score(p)).collect();
        for threads in [1, 2, 3, 64] {
            assert_eq!(
                forest.score_all(&points, threads),
                one_at_a_time,
                "{threads} threads"
            );
        }
        assert!(forest.score_all(&[], 2).is_empty());
    }

    #[test]
    fn constant_data_is_unremarkable() {
        let points = vec![vec![1.0, 2.0]; 50];
        let forest = IsolationForest::fit(&points, &ForestOptions::default());
        // Every tree is one leaf of 50 points: h = c(50), score = 2^(-c(50)/c(50)) = 0.5.
        assert!((forest.score(&[1.0, 2.0]) - 0.5).abs() < 1e-12);
    }
}
