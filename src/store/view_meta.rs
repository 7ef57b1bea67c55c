//! The photo-metadata section of a view file (view format 2): one fixed-size row per file,
//! strings (camera, lens, place, format) as indices into one dictionary of distinct strings, so
//! that a filter tests a row with integer comparisons and folds each distinct name once.
//!
//! Layout, little-endian: `count` 64-byte rows (i64 capture time as wall-clock milliseconds
//! (`i64::MIN`: none), i16 UTC offset in minutes (`i16::MIN`: unknown), u8 time source, u8
//! orientation, u8 flags (1: metadata read, 2: GPS, 4: altitude), 3 reserved bytes, f64
//! latitude, f64 longitude, f32 altitude, then u32 dictionary indices (`u32::MAX`: none) of
//! make, model, lens, city, region, country code and format), then the dictionary: u32 n,
//! n u32 byte lengths, the UTF-8 bytes.

use std::collections::HashMap;

use chrono::DateTime;

use super::record::FileRecord;
use crate::metadata::filter::{local_ms, RowFields};
use crate::metadata::{Gps, PhotoMeta, Place, Taken, TimeSource};

pub(crate) const META_ROW: usize = 64;
const NONE: u32 = u32::MAX;
const READ: u8 = 1;
const HAS_GPS: u8 = 2;
const HAS_ALT: u8 = 4;

/// The section's bytes for rows in view order.
pub(crate) fn encode<'a>(records: impl Iterator<Item = &'a FileRecord>) -> Vec<u8> {
    let mut dict: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, u32> = HashMap::new();
    let mut rows = Vec::new();
    for r in records {
        let mut row = [0u8; META_ROW];
        row[0..8].copy_from_slice(&i64::MIN.to_le_bytes());
        row[8..10].copy_from_slice(&i16::MIN.to_le_bytes());
        for at in (36..64).step_by(4) {
            row[at..at + 4].copy_from_slice(&NONE.to_le_bytes());
        }
        if let Some(m) = &r.meta {
            let mut flags = READ;
            if let Some(t) = &m.taken {
                row[0..8].copy_from_slice(&local_ms(&t.local).to_le_bytes());
                if let Some(o) = t.offset_minutes {
                    row[8..10].copy_from_slice(&o.to_le_bytes());
                }
                row[10] = t.source.code();
            }
            row[11] = m.orientation.unwrap_or(0);
            if let Some(g) = &m.gps {
                flags |= HAS_GPS;
                row[16..24].copy_from_slice(&g.lat.to_le_bytes());
                row[24..32].copy_from_slice(&g.lon.to_le_bytes());
                if let Some(a) = g.alt {
                    flags |= HAS_ALT;
                    row[32..36].copy_from_slice(&(a as f32).to_le_bytes());
                }
            }
            row[12] = flags;
            for (k, s) in m.strings().into_iter().enumerate() {
                if let Some(s) = s {
                    let i = *index.entry(s).or_insert_with(|| {
                        dict.push(s);
                        dict.len() as u32 - 1
                    });
                    row[36 + 4 * k..40 + 4 * k].copy_from_slice(&i.to_le_bytes());
                }
            }
        }
        rows.extend_from_slice(&row);
    }
    rows.extend_from_slice(&(dict.len() as u32).to_le_bytes());
    for s in &dict {
        rows.extend_from_slice(&(s.len() as u32).to_le_bytes());
    }
    for s in &dict {
        rows.extend_from_slice(s.as_bytes());
    }
    rows
}

/// A parsed section: where its rows are in the mapping, and its dictionary.
pub(crate) struct MetaSection {
    rows_at: usize,
    pub(crate) dict: Vec<String>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4"))
}

impl MetaSection {
    /// Checks and parses the section `map[at..at + len]` of a view of `count` rows.
    pub(crate) fn parse(map: &[u8], at: usize, len: usize, count: usize) -> Option<MetaSection> {
        let section = map.get(at..at.checked_add(len)?)?;
        let rows_len = count.checked_mul(META_ROW)?;
        if rows_len.checked_add(4)? > len {
            return None;
        }
        let n = u32_at(section, rows_len) as usize;
        let lens_at = rows_len + 4;
        let bytes_at = lens_at.checked_add(n.checked_mul(4)?)?;
        if bytes_at > len {
            return None;
        }
        let mut dict = Vec::with_capacity(n);
        let mut off = bytes_at;
        for i in 0..n {
            let l = u32_at(section, lens_at + 4 * i) as usize;
            let s = section.get(off..off.checked_add(l)?)?;
            dict.push(String::from_utf8_lossy(s).into_owned());
            off += l;
        }
        if off != len {
            return None;
        }
        // Row indices are not checked here (that would read every row on open): a lookup
        // treats an index outside the dictionary as none.
        let section = MetaSection { rows_at: at, dict };
        Some(section)
    }

    fn row<'m>(&self, map: &'m [u8], row: usize) -> &'m [u8] {
        let at = self.rows_at + row * META_ROW;
        &map[at..at + META_ROW]
    }

    /// The `k`-th dictionary index of a row, None when absent or out of range (damaged).
    fn index(&self, row: &[u8], k: usize) -> Option<u32> {
        Some(u32_at(row, 36 + 4 * k)).filter(|&i| i != NONE && (i as usize) < self.dict.len())
    }

    pub(crate) fn is_read(&self, map: &[u8], row: usize) -> bool {
        self.row(map, row)[12] & READ != 0
    }

    pub(crate) fn taken_ms(&self, map: &[u8], row: usize) -> Option<i64> {
        let t = i64::from_le_bytes(self.row(map, row)[0..8].try_into().expect("8"));
        (t != i64::MIN).then_some(t)
    }

    pub(crate) fn time_source(&self, map: &[u8], row: usize) -> Option<TimeSource> {
        TimeSource::from_code(self.row(map, row)[10])
    }

    pub(crate) fn fields(&self, map: &[u8], row: usize) -> RowFields {
        let r = self.row(map, row);
        let idx = |k: usize| self.index(r, k);
        let f64_at = |at: usize| f64::from_le_bytes(r[at..at + 8].try_into().expect("8"));
        RowFields {
            taken_ms: self.taken_ms(map, row),
            gps: (r[12] & HAS_GPS != 0).then(|| (f64_at(16), f64_at(24))),
            make: idx(0),
            model: idx(1),
            city: idx(3),
            region: idx(4),
            country: idx(5),
            format: idx(6),
        }
    }

    /// The row's metadata, None if it was never read.
    pub(crate) fn meta(&self, map: &[u8], row: usize) -> Option<PhotoMeta> {
        if !self.is_read(map, row) {
            return None;
        }
        let r = self.row(map, row);
        let f = self.fields(map, row);
        let s = |i: Option<u32>| i.map(|i| self.dict[i as usize].clone());
        let lens = self.index(r, 2);
        let taken = f.taken_ms.and_then(|ms| {
            let offset = i16::from_le_bytes(r[8..10].try_into().expect("2"));
            Some(Taken {
                local: DateTime::from_timestamp_millis(ms)?.naive_utc(),
                offset_minutes: (offset != i16::MIN).then_some(offset),
                source: TimeSource::from_code(r[10])?,
            })
        });
        let gps = f.gps.map(|(lat, lon)| Gps {
            lat,
            lon,
            alt: (r[12] & HAS_ALT != 0)
                .then(|| f32::from_le_bytes(r[32..36].try_into().expect("4")) as f64),
        });
        let place = s(f.country).map(|country_code| Place {
            city: s(f.city).unwrap_or_default(),
            region: s(f.region).unwrap_or_default(),
            country_code,
        });
        Some(PhotoMeta {
            taken,
            gps,
            place,
            make: s(f.make),
            model: s(f.model),
            lens: s(lens),
            orientation: Some(r[11]).filter(|&o| o != 0),
            format: s(f.format),
        })
    }
}
