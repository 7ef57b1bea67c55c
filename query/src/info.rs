//! What the index holds for one file (`clipsearch info`, `GET /api/info/{id}`).

use clipsearch::store::view::View;
use serde_json::{json, Value};

/// One file's catalog record and metadata as JSON.
pub fn describe(view: &View, row: usize) -> Value {
    let rec = view.record(row);
    let meta = rec.meta.clone().unwrap_or_default();
    let modified = clipsearch::metadata::filter::utc_iso(rec.mtime_ns / 1_000_000);
    json!({
        "id": rec.id,
        "path": view.path(row).to_string_lossy(),
        "raw": rec.raw.as_ref().map(|r| r.to_string_lossy()),
        "size": rec.size,
        "modified_unix_ms": rec.mtime_ns / 1_000_000,
        "modified": modified,
        "width": rec.width,
        "height": rec.height,
        "content_hash": rec.hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "format": meta.format,
        "taken": meta.taken.as_ref().map(|t| t.iso()),
        "taken_source": meta.taken.as_ref().map(|t| t.source),
        "time_is_guess": meta.taken.as_ref().map(|t| !t.source.is_recorded()),
        "gps": meta.gps,
        "place": meta.place.as_ref().map(|p| json!({
            "city": p.city,
            "region": p.region,
            "country": p.country(),
            "country_code": p.country_code,
            "label": p.label(),
        })),
        "camera": meta.camera(),
        "make": meta.make,
        "model": meta.model,
        "lens": meta.lens,
        "orientation": meta.orientation,
        "metadata_read": rec.meta.is_some(),
    })
}
