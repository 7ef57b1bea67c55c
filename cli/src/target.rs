//! The one place the CLI reads an `--index` value: a directory, or a shared Milvus collection's
//! URL (connected to here, before any work, so that an unreachable server is said at once).
//! Every command then works on the [`Target`] it gets, through the query crate's traits.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clipsearch_milvus::MilvusCollection;
use clipsearch_query::Target;

use crate::args::{host_name, IndexArg, SharedArgs};

/// What `--index` names, with this machine's part in a shared collection.
pub fn open(index: &IndexArg, shared: &SharedArgs) -> Result<Target> {
    let Some(value) = &index.index else {
        return Ok(Target::Local(default_dir()?));
    };
    match value.to_str().filter(|s| clipsearch_milvus::is_url(s)) {
        None => Ok(Target::Local(value.clone())),
        Some(url) => {
            let collection = MilvusCollection::connect(url)?;
            Ok(Target::Shared {
                catalog: catalog(shared, &collection)?,
                source: shared.source.clone().unwrap_or_else(host_name),
                collection: Arc::new(collection),
            })
        }
    }
}

/// $XDG_DATA_HOME/clipsearch/index.
fn default_dir() -> Result<PathBuf> {
    dirs::data_dir()
        .map(|d| d.join("clipsearch").join("index"))
        .ok_or_else(|| anyhow::anyhow!("no home directory: pass --index DIR"))
}

/// This machine's catalog of `collection`: `--catalog`, or one per collection under
/// $XDG_DATA_HOME/clipsearch/catalogs.
fn catalog(shared: &SharedArgs, collection: &MilvusCollection) -> Result<PathBuf> {
    if let Some(d) = &shared.catalog {
        return Ok(d.clone());
    }
    let l = collection.location_of();
    Ok(dirs::data_dir()
        .ok_or_else(|| anyhow::anyhow!("no home directory: pass --catalog DIR"))?
        .join("clipsearch/catalogs")
        .join(format!("{}_{}_{}", l.host, l.port, l.collection)))
}
