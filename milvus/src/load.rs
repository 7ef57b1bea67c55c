//! Load on demand. Milvus searches and queries only a collection loaded into its query nodes'
//! memory, and servers release collections behind their clients' backs: every restart of
//! milvus-lite (and of a standalone Milvus without its load state) leaves them released, and
//! clusters release collections to free memory. So every read that the server refuses as
//! "not loaded" loads the collection, waits for it (a spinner on a terminal), and is asked
//! once more; a load that fails says why, in clipsearch's words.

use std::sync::atomic::Ordering;
use std::time::Duration;

use clipsearch::{Error, Result};
use milvus::v2 as sdk;
use milvus::v2::prelude::LoadCollectionRequest;

use crate::fault::{self, Fault};
use crate::MilvusCollection;

/// How long a load may take: `CLIPSEARCH_MILVUS_LOAD_SECONDS`, 10 minutes by default (a
/// cluster loads 100 million vectors in minutes; milvus-lite 100k in seconds).
fn load_window() -> Duration {
    let secs = std::env::var("CLIPSEARCH_MILVUS_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(600);
    Duration::from_secs(secs.max(1))
}

impl MilvusCollection {
    /// The error for a failed call, in our words. A collection found gone is asked about
    /// again next time (another machine may create it anew).
    pub(crate) fn fail(&self, what: &str, e: sdk::error::Error) -> Error {
        if fault::classify(&e) == Fault::Dropped {
            self.seen.store(false, Ordering::Relaxed);
            self.with_meta.store(0, Ordering::Relaxed);
        }
        fault::error(&self.location, what, &e)
    }

    /// Runs a read (search, query, get), loading the collection first if the server has
    /// released it. (The SDK's error is boxed: it is large.)
    pub(crate) fn read<T>(
        &self,
        what: &str,
        call: impl Fn() -> std::result::Result<T, Box<sdk::error::Error>>,
    ) -> Result<T> {
        match call() {
            Err(e) if fault::classify(&e) == Fault::Released => {
                self.load(what)?;
                call().map_err(|e| self.fail(what, *e))
            }
            r => r.map_err(|e| self.fail(what, *e)),
        }
    }

    /// Loads the collection and waits until the server has it in memory.
    pub(crate) fn load(&self, what: &str) -> Result<()> {
        let url = self.location.url();
        tracing::info!("the collection {url} is released on the server: loading it for {what}");
        let bar = indicatif::ProgressBar::new_spinner().with_message(format!(
            "loading the collection {url} on the server (it was released)"
        ));
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let req = LoadCollectionRequest::builder()
            .collection_name(self.name())
            .sync(true)
            .timeout_ms(load_window().as_millis() as i64)
            .build()
            .map_err(|e| self.fail("load_collection", e))?;
        let started = std::time::Instant::now();
        let loaded = self.runtime.block_on(self.client.load_collection(req));
        bar.finish_and_clear();
        match loaded {
            Ok(()) => {
                tracing::info!("loaded {url} in {:.1} s", started.elapsed().as_secs_f64());
                Ok(())
            }
            // Gone or unreachable: those messages say what to do.
            Err(e)
                if !matches!(e, sdk::error::Error::Timeout(_))
                    && matches!(fault::classify(&e), Fault::Lost | Fault::Dropped) =>
            {
                Err(self.fail(what, e))
            }
            Err(e) => Err(fault::load_failed(&self.location, what, &e)),
        }
    }
}
