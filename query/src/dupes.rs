//! Near-duplicate groups: images whose embeddings are within a cosine threshold of each other
//! (the same photo resized, re-encoded or lightly edited), joined transitively.

use std::collections::HashMap;

use crate::{Error, Match, Searcher};

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

/// Groups of two or more near-duplicates, largest first; within a group, by path. Each file's
/// score is its best similarity to another member.
pub fn groups(searcher: &Searcher, threshold: f32) -> Result<Vec<Vec<Match>>, Error> {
    let view = searcher.view();
    let files: Vec<(std::path::PathBuf, u64)> = (0..view.len())
        .map(|row| (view.path(row).to_path_buf(), view.id(row)))
        .collect();
    let mut uf = UnionFind((0..files.len()).collect());
    let mut best: HashMap<usize, f32> = HashMap::new();
    // Pairs of file ids, over the view's mapped vectors (no copy); rows are found by id.
    for (a, b, score) in clipsearch::index::pairs_above(view.vectors(), threshold)? {
        let row = |id: u64| view.row_of_id(id).expect("pairs come from the view");
        let (a, b) = (row(a), row(b));
        uf.union(a, b);
        for i in [a, b] {
            let e = best.entry(i).or_insert(score);
            *e = e.max(score);
        }
    }
    let mut by_root: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..files.len() {
        let r = uf.find(i);
        by_root.entry(r).or_default().push(i);
    }
    let mut out: Vec<Vec<Match>> = by_root
        .into_values()
        .filter(|g| g.len() > 1)
        .map(|g| {
            g.into_iter()
                .map(|i| Match {
                    path: files[i].0.clone(),
                    score: best.get(&i).copied().unwrap_or(1.0),
                    raw: view
                        .row_of_id(files[i].1)
                        .and_then(|row| view.raw(row))
                        .map(|p| p.to_path_buf()),
                    id: files[i].1,
                })
                .collect()
        })
        .collect();
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].path.cmp(&b[0].path)));
    Ok(out)
}
