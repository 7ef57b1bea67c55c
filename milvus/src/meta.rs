//! Photo metadata in a Milvus collection: scalar fields that Milvus filters on, and the whole
//! record as JSON for display.
//!
//! The filters of `clipsearch search` (`after`, `before`, `camera`, `place`, `near`,
//! `format`) become one boolean expression over the scalar fields, evaluated by Milvus during
//! the vector search, so a filtered top-k costs what an unfiltered one does. Strings are stored
//! folded (lower-case ASCII) and delimited by `|`, so that "camera contains these words" and
//! "the place is this city, region or country (by any of its names)" are `like` patterns.
//! The expression keeps a superset of the files the filter keeps (a radius is a latitude and
//! longitude box; a word with `like` wildcards in it is not sent), and every candidate is
//! checked against the filter itself (`Filter::matches_meta`), so results are exactly the
//! local index's.

use clipsearch::metadata::filter::{canonical_format, local_ms};
use clipsearch::metadata::place::country_names;
use clipsearch::metadata::{fold, Filter, PhotoMeta};
use serde_json::{json, Map, Value};

use milvus::v2 as sdk;

/// `taken` of a photo without a capture time (far below any real one, and a literal every
/// expression parser reads).
pub const NO_TIME: i64 = -(1 << 62);
/// `lat`/`lon` of a photo without a GPS position.
const NO_POSITION: f64 = 1000.0;
/// The field that marks a collection made with metadata (older ones lack it).
pub const META: &str = "meta";
const MAX_META: u32 = 16_384;

/// The schema's metadata fields.
pub fn add_fields(schema: sdk::CollectionSchema) -> sdk::CollectionSchema {
    let varchar = |name: &str, len: u32| {
        sdk::FieldSchema::new()
            .name(name)
            .data_type(sdk::DataType::VarChar)
            .max_length(len)
    };
    let scalar = |name: &str, t: sdk::DataType| sdk::FieldSchema::new().name(name).data_type(t);
    schema
        .add_field(scalar("taken", sdk::DataType::Int64))
        .add_field(scalar("lat", sdk::DataType::Double))
        .add_field(scalar("lon", sdk::DataType::Double))
        .add_field(varchar("camera", 1024))
        .add_field(varchar("places", 2048))
        .add_field(varchar("format", 64))
        .add_field(varchar(META, MAX_META))
}

/// `|a|b|`: folded words, delimited so that a pattern matches whole names only.
fn delimited<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("|");
    for n in names {
        let f = fold(n.trim());
        if !f.is_empty() {
            s.push_str(&f);
            s.push('|');
        }
    }
    s
}

/// The metadata fields of one row.
pub fn row_fields(meta: Option<&PhotoMeta>, row: &mut Map<String, Value>) {
    let m = meta.cloned().unwrap_or_default();
    let taken = m.taken.as_ref().map_or(NO_TIME, |t| local_ms(&t.local));
    let (lat, lon) = m.gps.map_or((NO_POSITION, NO_POSITION), |g| (g.lat, g.lon));
    let camera = delimited(m.camera().iter().chain(&m.model).map(String::as_str));
    let places = match &m.place {
        None => "|".to_string(),
        Some(p) => {
            let countries = country_names(&p.country_code);
            delimited(
                [p.city.as_str(), p.region.as_str()]
                    .into_iter()
                    .chain(countries.iter().map(String::as_str)),
            )
        }
    };
    let format = m
        .format
        .as_deref()
        .map(|f| canonical_format(&fold(f)))
        .unwrap_or_default();
    let mut record = meta
        .map(|m| serde_json::to_string(m).unwrap_or_default())
        .unwrap_or_default();
    if record.len() > MAX_META as usize {
        // Longer than any real photo's (a lens name is not 16 KiB): kept without the strings
        // that could make it so, rather than refused.
        let mut short = m.clone();
        short.lens = None;
        short.make = short.make.map(|s| s.chars().take(256).collect());
        short.model = short.model.map(|s| s.chars().take(256).collect());
        record = serde_json::to_string(&short).unwrap_or_default();
    }
    for (k, v) in [
        ("taken", json!(taken)),
        ("lat", json!(lat)),
        ("lon", json!(lon)),
        ("camera", json!(truncate(camera, 1024))),
        ("places", json!(truncate(places, 2048))),
        ("format", json!(truncate(format, 64))),
        (META, json!(record)),
    ] {
        row.insert(k.into(), v);
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The record stored in `meta` ("" when it was never read).
pub fn parse(json: &str) -> Option<PhotoMeta> {
    if json.is_empty() {
        return None;
    }
    serde_json::from_str(json).ok()
}

/// A `like` pattern for `|word...|` fields, or None when the text holds characters `like`
/// would read as wildcards (then the candidates are checked here only).
fn contains(field: &str, text: &str, whole: bool) -> Option<String> {
    let t = fold(text.trim());
    if t.is_empty() || t.contains(['%', '_', '\\', '|']) {
        return None;
    }
    let pattern = if whole {
        format!("%|{t}|%")
    } else {
        format!("%{t}%")
    };
    Some(format!(
        "{field} like {}",
        serde_json::to_string(&pattern).ok()?
    ))
}

/// An expression keeping (at least) the files `filter` keeps; "" for none.
pub fn expression(filter: &Filter) -> String {
    let mut all: Vec<String> = Vec::new();
    if let Some(a) = &filter.after {
        all.push(format!("taken >= {}", local_ms(&a.start)));
    }
    if let Some(b) = &filter.before {
        all.push(format!(
            "taken > {NO_TIME} and taken < {}",
            local_ms(&b.end)
        ));
    }
    if let Some(c) = &filter.camera {
        all.extend(contains("camera", c, false));
    }
    if let Some(p) = &filter.place {
        all.extend(
            p.split(',')
                .filter_map(|part| contains("places", part, true)),
        );
    }
    if let Some(n) = &filter.near {
        // A box around the circle: 111.19 km per degree of latitude; longitude degrees shrink
        // with the cosine of the latitude farthest from the equator (no bound near a pole or
        // across the antimeridian).
        let dlat = n.km / 111.19;
        all.push(format!(
            "lat >= {} and lat <= {}",
            n.lat - dlat,
            n.lat + dlat
        ));
        let far = (n.lat.abs() + dlat).to_radians();
        if far < 89f64.to_radians() {
            let dlon = n.km / (111.19 * far.cos());
            let (w, e) = (n.lon - dlon, n.lon + dlon);
            if w >= -180.0 && e <= 180.0 {
                all.push(format!("lon >= {w} and lon <= {e}"));
            }
        }
    }
    if let Some(f) = &filter.format {
        let wanted: Vec<String> = f
            .split(',')
            .map(|x| canonical_format(&fold(x.trim())))
            .filter(|x| !x.is_empty())
            .collect();
        // `raw` stands for many formats: those are checked here.
        if !wanted.is_empty() && !wanted.iter().any(|w| w == "raw") {
            let list: Vec<String> = wanted
                .iter()
                .filter_map(|w| serde_json::to_string(w).ok())
                .collect();
            all.push(format!("format in [{}]", list.join(", ")));
        }
    }
    all.iter()
        .map(|e| format!("({e})"))
        .collect::<Vec<_>>()
        .join(" and ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        let mut f = Filter::default();
        assert_eq!(expression(&f), "");
        f.set("place", "Lisbon, Portugal").unwrap();
        f.set("camera", "Canon EOS").unwrap();
        f.set("format", "jpg,heif").unwrap();
        assert_eq!(
            expression(&f),
            r#"(camera like "%canon eos%") and (places like "%|lisbon|%") and (places like "%|portugal|%") and (format in ["jpeg", "heic"])"#
        );
        let mut f = Filter::default();
        f.set("camera", "100%_zoom").unwrap();
        f.set("format", "raw").unwrap();
        assert_eq!(
            expression(&f),
            "",
            "wildcards and `raw` are checked locally"
        );
        f.set("before", "2020").unwrap();
        assert!(expression(&f).starts_with(&format!("(taken > {NO_TIME} and taken < ")));
    }

    #[test]
    fn fields_of_a_photo() {
        let meta = PhotoMeta {
            make: Some("NIKON CORPORATION".into()),
            model: Some("NIKON D850".into()),
            place: Some(clipsearch::metadata::Place {
                city: "Lisboa".into(),
                region: "Lisbon".into(),
                country_code: "PT".into(),
            }),
            format: Some("JPEG".into()),
            ..Default::default()
        };
        let mut row = Map::new();
        row_fields(Some(&meta), &mut row);
        assert_eq!(row["camera"], "|nikon d850|nikon d850|");
        let places = row["places"].as_str().unwrap();
        assert!(places.starts_with("|lisboa|lisbon|portugal|"), "{places}");
        assert_eq!(row["format"], "jpeg");
        assert_eq!(row["taken"], NO_TIME);
        assert_eq!(parse(row[META].as_str().unwrap()), Some(meta));
        let mut row = Map::new();
        row_fields(None, &mut row);
        assert_eq!(
            (row["places"].as_str(), row[META].as_str()),
            (Some("|"), Some(""))
        );
    }
}
