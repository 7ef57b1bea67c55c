//! Near-duplicate groups: images whose embeddings are within a cosine threshold of each other
//! (the same photo resized, re-encoded or lightly edited), joined transitively.

use std::collections::HashMap;

use crate::{Error, Match, Searcher};

/// Default threshold: see the closing note of the search issue and `tests/cli_search.rs`.
pub const DEFAULT_THRESHOLD: f32 = 0.97;

/// How many neighbours of each image are examined.
const NEIGHBOURS: usize = 16;

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

/// Groups of two or more near-duplicates, largest first; within a group, by path.
pub fn groups(searcher: &Searcher, threshold: f32) -> Result<Vec<Vec<Match>>, Error> {
    let store = searcher.store();
    let mut files = Vec::new();
    for item in store.files() {
        let (path, rec) = item?;
        files.push((path, rec));
    }
    let pos: HashMap<u64, usize> = files
        .iter()
        .enumerate()
        .map(|(i, (_, r))| (r.id, i))
        .collect();
    let mut uf = UnionFind((0..files.len()).collect());
    let mut best: HashMap<usize, f32> = HashMap::new();
    for (i, (_, rec)) in files.iter().enumerate() {
        let Some(v) = store.embedding(&rec.hash)? else {
            continue;
        };
        let hits = searcher.index().search(store, &v, NEIGHBOURS, &|_| true)?;
        for h in hits {
            if h.score < threshold {
                break;
            }
            if let Some(&j) = pos.get(&h.id) {
                if j != i {
                    uf.union(i, j);
                    let e = best.entry(i).or_insert(h.score);
                    *e = e.max(h.score);
                }
            }
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
                    id: files[i].1.id,
                })
                .collect()
        })
        .collect();
    out.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].path.cmp(&b[0].path)));
    Ok(out)
}
