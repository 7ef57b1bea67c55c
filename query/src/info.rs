//! What the index holds for one file (`clipsearch info`, `GET /api/info/{id}`).

use clipsearch::metadata::filter::month_of_ms;
use clipsearch::metadata::PhotoMeta;
use clipsearch::store::view::View;
use serde::Serialize;
use serde_json::{json, Value};

/// How much of an index's metadata is known: what filters can work with.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Coverage {
    pub files: usize,
    /// Files with a capture time (recorded or guessed from the file).
    pub dated: usize,
    /// ... of which the photo itself records it (EXIF or XMP).
    pub dated_by_camera: usize,
    /// Year and month of the oldest and newest capture time.
    pub first_month: Option<String>,
    pub last_month: Option<String>,
    pub with_gps: usize,
    pub with_place: usize,
    pub with_camera: usize,
    /// Files whose metadata was never read (an index built by an older clipsearch).
    pub unread: usize,
}

/// Counts what the view's metadata covers (one pass over its rows).
pub fn coverage(view: &View) -> Coverage {
    let mut c = Coverage {
        files: view.len(),
        unread: view.unread_metadata(),
        ..Default::default()
    };
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for row in 0..view.len() {
        let f = view.fields(row);
        if let Some(t) = f.taken_ms {
            c.dated += 1;
            first = first.min(t);
            last = last.max(t);
            if view.time_recorded(row) {
                c.dated_by_camera += 1;
            }
        }
        c.with_gps += usize::from(f.gps.is_some());
        c.with_place += usize::from(f.country.is_some());
        c.with_camera += usize::from(f.make.is_some() || f.model.is_some());
    }
    if c.dated > 0 {
        c.first_month = Some(month_of_ms(first));
        c.last_month = Some(month_of_ms(last));
    }
    c
}

/// One file's catalog record and metadata as JSON.
pub fn describe(view: &View, row: usize) -> Value {
    let rec = view.record(row);
    let modified = clipsearch::metadata::filter::utc_iso(rec.mtime_ns / 1_000_000);
    let mut v = json!({
        "id": rec.id,
        "path": view.path(row).to_string_lossy(),
        "raw": rec.raw.as_ref().map(|r| r.to_string_lossy()),
        "size": rec.size,
        "modified_unix_ms": rec.mtime_ns / 1_000_000,
        "modified": modified,
        "width": rec.width,
        "height": rec.height,
        "content_hash": rec.hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
    });
    add_metadata(&mut v, rec.meta.as_ref());
    v
}

/// A shared collection's file: its machine, path, key and metadata (the collection keeps no
/// file sizes or dimensions: the machine's own catalog does).
pub fn describe_shared(source: &str, path: &str, meta: Option<&PhotoMeta>) -> Value {
    let mut v = json!({
        "id": clipsearch::store::collection::key_of(source, path),
        "source": source,
        "path": path,
    });
    add_metadata(&mut v, meta);
    v
}

fn add_metadata(v: &mut Value, meta: Option<&PhotoMeta>) {
    let m = meta.cloned().unwrap_or_default();
    let fields = json!({
        "format": m.format,
        "taken": m.taken.as_ref().map(|t| t.iso()),
        "taken_source": m.taken.as_ref().map(|t| t.source),
        "time_is_guess": m.taken.as_ref().map(|t| !t.source.is_recorded()),
        "gps": m.gps,
        "place": m.place.as_ref().map(|p| json!({
            "city": p.city,
            "region": p.region,
            "country": p.country(),
            "country_code": p.country_code,
            "label": p.label(),
        })),
        "camera": m.camera(),
        "make": m.make,
        "model": m.model,
        "lens": m.lens,
        "orientation": m.orientation,
        "metadata_read": meta.is_some(),
    });
    if let (Some(v), Value::Object(f)) = (v.as_object_mut(), fields) {
        v.extend(f);
    }
}
