//! Periodic publication during a run, so that searches see a long first index fill up as it
//! goes rather than only at its end (readers search published views: see
//! `clipsearch::store::view`).
//!
//! The first view is published right after the first committed batch (a reader waits for the
//! model to load and one batch, not for the interval); after that, one when `interval` has
//! passed since the last, but never more often than 20 times the last publication's cost, so
//! that publishing stays under about 5% of the run however large the index grows. A
//! publication writes what changed (the new files with the small tail segment; full segments
//! are merged in the background), so its cost does not grow with the library.

use std::time::{Duration, Instant};

use clipsearch::index::{publish, publish_and_settle};
use clipsearch::store::Store;
use clipsearch::Error;

/// Publishing stays below 1/COST_FACTOR of the wall time between publications.
const COST_FACTOR: u32 = 20;

pub struct Publisher {
    interval: Duration,
    last: Option<Instant>,
    last_cost: Duration,
    /// Files committed since the last publication.
    pending: usize,
    /// Publications made, and their total time.
    pub count: usize,
    pub seconds: f64,
}

impl Publisher {
    /// `interval`: the longest a committed file waits before readers see it (once the cost
    /// bound allows); zero publishes after every batch.
    pub fn new(interval: Duration) -> Self {
        Publisher {
            interval,
            last: None,
            last_cost: Duration::ZERO,
            pending: 0,
            count: 0,
            seconds: 0.0,
        }
    }

    /// Called after each committed batch of `n` files.
    pub fn committed(&mut self, store: &Store, n: usize) -> Result<(), Error> {
        self.pending += n;
        if self.pending == 0 {
            return Ok(());
        }
        let due = match self.last {
            None => true,
            Some(at) => {
                let since = at.elapsed();
                since >= self.interval && since >= self.last_cost * COST_FACTOR
            }
        };
        if due {
            self.publish(store)?;
        }
        Ok(())
    }

    /// Publishes now.
    pub fn publish(&mut self, store: &Store) -> Result<(), Error> {
        self.publish_with(store, false)
    }

    /// Publishes at the end of a run: waits for background merges and publishes what they
    /// made, so that the run leaves its index compact (the wait counts as publishing).
    pub fn publish_final(&mut self, store: &Store) -> Result<(), Error> {
        self.publish_with(store, true)
    }

    fn publish_with(&mut self, store: &Store, settle: bool) -> Result<(), Error> {
        let t = Instant::now();
        if settle {
            publish_and_settle(store)?;
        } else {
            publish(store)?;
        }
        self.last_cost = t.elapsed();
        self.last = Some(Instant::now());
        self.pending = 0;
        self.count += 1;
        self.seconds += self.last_cost.as_secs_f64();
        Ok(())
    }
}
