//! Near-duplicate groups: images whose embeddings are within a cosine threshold of each other
//! (the same photo resized, re-encoded or lightly edited), joined transitively. Each searcher
//! finds the pairs where its vectors are ([`crate::Searcher::groups`]); the joining is here.

use std::collections::HashMap;

use crate::results::Match;

/// Default threshold. Not measured on a pretrained CLIP here (none is available offline); the
/// tests pass their own (see the search issue's closing note).
pub const DEFAULT_THRESHOLD: f32 = 0.97;

struct UnionFind(Vec<usize>);

impl UnionFind {
    fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Joins `n` files into groups by `pairs` (positions and similarity), transitively; groups of
/// two or more, each file made a [`Match`] by `matched(position, best similarity)`, largest
/// group first, by path within a group.
pub(crate) fn join(
    n: usize,
    pairs: impl IntoIterator<Item = (usize, usize, f32)>,
    matched: impl Fn(usize, f32) -> Match,
) -> Vec<Vec<Match>> {
    let mut uf = UnionFind((0..n).collect());
    let mut best: HashMap<usize, f32> = HashMap::new();
    for (a, b, score) in pairs {
        uf.union(a, b);
        for i in [a, b] {
            let e = best.entry(i).or_insert(score);
            *e = e.max(score);
        }
    }
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..n {
        let r = uf.find(i);
        by_root.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<Match>> = by_root
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            let mut g: Vec<Match> = g
                .into_iter()
                .map(|i| matched(i, best.get(&i).copied().unwrap_or(1.0)))
                .collect();
            g.sort_by(|a, b| (&a.source, &a.path).cmp(&(&b.source, &b.path)));
            g
        })
        .collect();
    out.sort_by(|a, b| {
        b.len()
            .cmp(&a.len())
            .then((&a[0].source, &a[0].path).cmp(&(&b[0].source, &b[0].path)))
    });
    out
}
