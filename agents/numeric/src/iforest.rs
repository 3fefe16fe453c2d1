//! Isolation forest (Liu, Ting and Zhou, 2008) for any number of features, seeded and
//! reproducible. Groundwork for the anomaly agent (not routed yet).
//!
//! Each tree isolates a random subsample of `sample_size` points by splitting on a random
//! feature (one that varies in the node) at a uniform random value between its minimum and
//! maximum, down to depth ceil(log2(sample_size)). A point's score is
//! 2^(-E[h(x)] / c(sample_size)), where h is the path length (plus c(n) for the n points left
//! in the leaf reached) and c(n) the average path length of an unsuccessful binary-search-tree
//! search; higher means more anomalous, 0.5 is unremarkable.

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

#[derive(Debug, Clone)]
enum Node {
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
    Leaf {
        size: usize,
    },
}

/// A fitted forest.
#[derive(Debug, Clone)]
pub struct IsolationForest {
    trees: Vec<Vec<Node>>,
    sample_size: usize,
    dim: usize,
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
        let trees = (0..options.n_trees.max(1))
            .map(|_| {
                // Partial Fisher-Yates: the first `sample_size` entries are a sample without replacement.
                for i in 0..sample_size {
                    let j = i + (rng.next_u64() % (indices.len() - i) as u64) as usize;
                    indices.swap(i, j);
                }
                let mut sample = indices[..sample_size].to_vec();
                let mut nodes = Vec::new();
                grow(
                    points,
                    &mut sample,
                    0,
                    depth_limit,
                    dim,
                    &mut rng,
                    &mut nodes,
                );
                nodes
            })
            .collect();
        Self {
            trees,
            sample_size,
            dim,
        }
    }

    /// Number of features the forest was fitted on.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Anomaly score of one point (higher is more anomalous).
    pub fn score(&self, point: &[f64]) -> f64 {
        let mean_path: f64 = self
            .trees
            .iter()
            .map(|tree| path_length(tree, point))
            .sum::<f64>()
            / self.trees.len() as f64;
        2f64.powf(-mean_path / average_path_length(self.sample_size).max(f64::MIN_POSITIVE))
    }
}

/// Builds the subtree over `rows` and returns its index in `nodes`.
fn grow(
    points: &[Vec<f64>],
    rows: &mut [usize],
    depth: usize,
    depth_limit: usize,
    dim: usize,
    rng: &mut SplitMix64,
    nodes: &mut Vec<Node>,
) -> usize {
    let here = nodes.len();
    nodes.push(Node::Leaf { size: rows.len() });
    if rows.len() <= 1 || depth >= depth_limit {
        return here;
    }
    let range = |f: usize| {
        rows.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &r| {
                (lo.min(points[r][f]), hi.max(points[r][f]))
            })
    };
    let varying: Vec<(usize, f64, f64)> = (0..dim)
        .map(|f| (f, range(f)))
        .filter(|(_, (lo, hi))| hi > lo)
        .map(|(f, (lo, hi))| (f, lo, hi))
        .collect();
    if varying.is_empty() {
        return here;
    }
    let (feature, lo, hi) = varying[(rng.next_u64() % varying.len() as u64) as usize];
    let threshold = lo + rng.next_f64() * (hi - lo);
    let mut split = 0;
    for i in 0..rows.len() {
        if points[rows[i]][feature] < threshold {
            rows.swap(i, split);
            split += 1;
        }
    }
    let (left_rows, right_rows) = rows.split_at_mut(split);
    let left = grow(points, left_rows, depth + 1, depth_limit, dim, rng, nodes);
    let right = grow(points, right_rows, depth + 1, depth_limit, dim, rng, nodes);
    nodes[here] = Node::Split {
        feature,
        threshold,
        left,
        right,
    };
    here
}

fn path_length(tree: &[Node], point: &[f64]) -> f64 {
    let mut node = 0;
    let mut depth = 0.0;
    loop {
        match tree[node] {
            Node::Leaf { size } => return depth + average_path_length(size),
            Node::Split {
                feature,
                threshold,
                left,
                right,
            } => {
                node = if point[feature] < threshold {
                    left
                } else {
                    right
                };
                depth += 1.0;
            }
        }
    }
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

    #[test]
    fn constant_data_is_unremarkable() {
        let points = vec![vec![1.0, 2.0]; 50];
        let forest = IsolationForest::fit(&points, &ForestOptions::default());
        // Every tree is one leaf of 50 points: h = c(50), score = 2^(-c(50)/c(50)) = 0.5.
        assert!((forest.score(&[1.0, 2.0]) - 0.5).abs() < 1e-12);
    }
}
