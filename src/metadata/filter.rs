//! Selecting photos by metadata: capture date, camera, place, distance and format, and the
//! orders results can be listed in.
//!
//! A [`Filter`] is parsed from what people type (`--after 2023-06`, `place:Lisbon`); it is then
//! compiled against a view's string dictionary ([`Filter::compile`]) so that testing a row is a
//! few integer comparisons, and names are folded (case and accents) once per distinct string,
//! not once per photo.

use std::collections::HashMap;

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use super::photo::{camera_name, fold, PhotoMeta};
use super::place;

/// A filter the user gave that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct FilterError(pub String);

/// A year, a month or a day: a period of time.
#[derive(Clone, Debug, PartialEq)]
pub struct DateBound {
    pub text: String,
    /// First millisecond of the period, as wall-clock time.
    pub start: NaiveDateTime,
    /// First millisecond after it.
    pub end: NaiveDateTime,
}

impl std::str::FromStr for DateBound {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let bad = || {
            FilterError(format!(
                "`{s}` is not a date: give a year, a month or a day (2023, 2023-06, 2023-06-14)"
            ))
        };
        let parts: Vec<&str> = s.trim().split('-').collect();
        let num = |p: &str| -> Result<u32, FilterError> {
            if p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            p.parse().map_err(|_| bad())
        };
        let (start, end) = match parts.as_slice() {
            [y] if y.len() == 4 => {
                let y = num(y)? as i32;
                (ymd(y, 1, 1), ymd(y + 1, 1, 1))
            }
            [y, m] if y.len() == 4 => {
                let (y, m) = (num(y)? as i32, num(m)?);
                let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (ymd(y, m, 1), ymd(next.0, next.1, 1))
            }
            [y, m, d] if y.len() == 4 => {
                let day = ymd(num(y)? as i32, num(m)?, num(d)?);
                (day, day.and_then(|d| d.succ_opt()))
            }
            _ => return Err(bad()),
        };
        match (start, end) {
            (Some(start), Some(end)) => Ok(DateBound {
                text: s.trim().to_string(),
                start: start.and_hms_opt(0, 0, 0).ok_or_else(bad)?,
                end: end.and_hms_opt(0, 0, 0).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// Wall-clock milliseconds, the unit views store capture times in.
pub fn local_ms(t: &NaiveDateTime) -> i64 {
    t.and_utc().timestamp_millis()
}

/// The order results are listed in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Best match first.
    #[default]
    Score,
    /// Oldest first.
    Date,
    /// Newest first.
    DateDesc,
}

impl std::str::FromStr for SortOrder {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        match s.trim() {
            "score" => Ok(SortOrder::Score),
            "date" | "+date" | "oldest" => Ok(SortOrder::Date),
            "-date" | "newest" => Ok(SortOrder::DateDesc),
            other => Err(FilterError(format!(
                "unknown order `{other}`: use score, date (oldest first) or -date (newest first)"
            ))),
        }
    }
}

/// Photos within a distance of a point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub km: f64,
}

impl std::str::FromStr for Near {
    type Err = FilterError;
    fn from_str(s: &str) -> Result<Self, FilterError> {
        let bad = || {
            FilterError(format!(
                "`{s}` is not LAT,LON,KM (e.g. 38.72,-9.14,25: within 25 km of Lisbon)"
            ))
        };
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().trim_end_matches("km").trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        match parts.as_slice() {
            [lat, lon, km]
                if lat.abs() <= 90.0 && lon.abs() <= 180.0 && *km >= 0.0 && km.is_finite() =>
            {
                Ok(Near {
                    lat: *lat,
                    lon: *lon,
                    km: *km,
                })
            }
            _ => Err(bad()),
        }
    }
}

/// Which photos a query may return. Empty: all of them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    /// Taken on or after the start of this period.
    pub after: Option<DateBound>,
    /// Taken on or before the end of this period (`--after 2023 --before 2023`: all of 2023).
    pub before: Option<DateBound>,
    /// Words of the camera's make and model ("canon", "iphone 15").
    pub camera: Option<String>,
    /// A city, region or country; several, comma-separated, must all match ("Lisbon, Portugal").
    pub place: Option<String>,
    pub near: Option<Near>,
    /// Formats, comma-separated ("jpeg", "heic,avif", "raw" for every camera RAW).
    pub format: Option<String>,
}

/// The filter keys, as options (`--after`) and inline in a query (`after:2023`).
pub const KEYS: &[&str] = &["after", "before", "camera", "place", "near", "format"];

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Sets one filter from its key and the text given for it.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), FilterError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(FilterError(format!("`{key}` needs a value")));
        }
        match key {
            "after" => self.after = Some(value.parse()?),
            "before" => self.before = Some(value.parse()?),
            "camera" => self.camera = Some(value.to_string()),
            "place" => self.place = Some(value.to_string()),
            "near" => self.near = Some(value.parse()?),
            "format" => self.format = Some(value.to_string()),
            other => return Err(FilterError(format!("unknown filter `{other}`"))),
        }
        self.check_period()
    }

    /// Adds `other`'s filters, which win where both set one (inline filters over options).
    pub fn merge(&mut self, other: &Filter) -> Result<(), FilterError> {
        fn keep<T: Clone>(mine: &mut Option<T>, theirs: &Option<T>) {
            if theirs.is_some() {
                *mine = theirs.clone();
            }
        }
        keep(&mut self.after, &other.after);
        keep(&mut self.before, &other.before);
        keep(&mut self.camera, &other.camera);
        keep(&mut self.place, &other.place);
        keep(&mut self.format, &other.format);
        keep(&mut self.near, &other.near);
        self.check_period()
    }

    fn check_period(&self) -> Result<(), FilterError> {
        if let (Some(a), Some(b)) = (&self.after, &self.before) {
            if a.start >= b.end {
                return Err(FilterError(format!(
                    "after {} and before {} leave no time between them",
                    a.text, b.text
                )));
            }
        }
        Ok(())
    }

    /// Says what the filter keeps, for messages: `after 2023-06, place Lisbon`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(a) = &self.after {
            parts.push(format!("after {}", a.text));
        }
        if let Some(b) = &self.before {
            parts.push(format!("before {}", b.text));
        }
        if let Some(c) = &self.camera {
            parts.push(format!("camera {c}"));
        }
        if let Some(p) = &self.place {
            parts.push(format!("place {p}"));
        }
        if let Some(n) = &self.near {
            parts.push(format!("near {},{},{} km", n.lat, n.lon, n.km));
        }
        if let Some(f) = &self.format {
            parts.push(format!("format {f}"));
        }
        parts.join(", ")
    }

    /// Whether one file's metadata passes (None: never read, which no filter keeps). For
    /// files one at a time (a shared collection's candidates); views compile the filter once
    /// against their dictionary instead.
    pub fn matches_meta(&self, meta: Option<&PhotoMeta>) -> bool {
        let Some(m) = meta else {
            return self.is_empty();
        };
        // A dictionary of this file's strings; each present string's index is its position
        // among the present ones.
        let strings = m.strings();
        let dict: Vec<String> = strings.iter().flatten().map(|s| s.to_string()).collect();
        let mut next = 0u32;
        let [make, model, _lens, city, region, country, format] = strings.map(|s| {
            s.map(|_| {
                next += 1;
                next - 1
            })
        });
        let row = RowFields {
            taken_ms: m.taken.as_ref().map(|t| local_ms(&t.local)),
            gps: m.gps.map(|g| (g.lat, g.lon)),
            make,
            model,
            city,
            region,
            country,
            format,
        };
        self.compile(&dict).matches(&row)
    }

    /// This filter against a dictionary of strings (a view's): ready to test rows.
    pub fn compile<'a>(&'a self, dict: &'a [String]) -> Compiled<'a> {
        let folded: Vec<String> = if self.place.is_some() || self.camera.is_some() {
            dict.iter().map(|s| fold(s)).collect()
        } else {
            Vec::new()
        };
        let place_parts: Vec<(Vec<bool>, Vec<bool>)> = self
            .place
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| fold(p.trim()))
            .filter(|p| !p.is_empty())
            .map(|part| {
                let text: Vec<bool> = folded.iter().map(|s| *s == part).collect();
                let country: Vec<bool> = dict
                    .iter()
                    .map(|code| {
                        code.len() == 2
                            && place::country_names(code).iter().any(|n| fold(n) == part)
                    })
                    .collect();
                (text, country)
            })
            .collect();
        let formats: Option<Vec<String>> = self.format.as_ref().map(|f| {
            f.split(',')
                .map(|x| canonical_format(&fold(x.trim())))
                .collect()
        });
        let format_ok: Vec<bool> = match &formats {
            None => Vec::new(),
            Some(wanted) => dict
                .iter()
                .map(|s| {
                    let s = canonical_format(&fold(s));
                    wanted
                        .iter()
                        .any(|w| *w == s || (w == "raw" && is_raw_format(&s)))
                })
                .collect(),
        };
        Compiled {
            filter: self,
            dict,
            folded,
            after_ms: self.after.as_ref().map(|a| local_ms(&a.start)),
            before_ms: self.before.as_ref().map(|b| local_ms(&b.end)),
            camera: self.camera.as_ref().map(|c| fold(c.trim())),
            camera_cache: HashMap::new(),
            place_parts,
            format_ok,
        }
    }
}

/// The one spelling of a format name ("jpg" is "jpeg", "tif" is "tiff", ...), folded.
pub fn canonical_format(f: &str) -> String {
    match f {
        "jpg" | "jpe" | "jfif" => "jpeg".into(),
        "tif" => "tiff".into(),
        "jxl" => "jpeg xl".into(),
        "heif" | "hif" => "heic".into(),
        other => other.into(),
    }
}

/// Whether a (canonical) format name is a camera RAW's.
pub fn is_raw_format(f: &str) -> bool {
    crate::preprocess::formats::is_raw_name(std::path::Path::new(&format!("x.{f}")))
}

/// One row's metadata as a view stores it: strings as indices into the view's dictionary.
#[derive(Clone, Copy, Debug, Default)]
pub struct RowFields {
    /// Capture time, wall-clock milliseconds ([`local_ms`]).
    pub taken_ms: Option<i64>,
    pub gps: Option<(f64, f64)>,
    pub make: Option<u32>,
    pub model: Option<u32>,
    pub city: Option<u32>,
    pub region: Option<u32>,
    pub country: Option<u32>,
    pub format: Option<u32>,
}

/// A filter compiled against a dictionary.
pub struct Compiled<'a> {
    filter: &'a Filter,
    dict: &'a [String],
    folded: Vec<String>,
    after_ms: Option<i64>,
    before_ms: Option<i64>,
    camera: Option<String>,
    camera_cache: HashMap<(Option<u32>, Option<u32>), bool>,
    place_parts: Vec<(Vec<bool>, Vec<bool>)>,
    format_ok: Vec<bool>,
}

impl Compiled<'_> {
    pub fn matches(&mut self, row: &RowFields) -> bool {
        if self.after_ms.is_some() || self.before_ms.is_some() {
            let Some(t) = row.taken_ms else {
                return false;
            };
            if self.after_ms.is_some_and(|a| t < a) || self.before_ms.is_some_and(|b| t >= b) {
                return false;
            }
        }
        if let Some(n) = &self.filter.near {
            match row.gps {
                Some(p) if place::distance_km((n.lat, n.lon), p) <= n.km => {}
                _ => return false,
            }
        }
        if !self.format_ok.is_empty() && !row.format.is_some_and(|f| self.format_ok[f as usize]) {
            return false;
        }
        let at = |v: &Vec<bool>, i: Option<u32>| i.is_some_and(|i| v[i as usize]);
        for (text, country) in &self.place_parts {
            if !(at(text, row.city) || at(text, row.region) || at(country, row.country)) {
                return false;
            }
        }
        if let Some(want) = &self.camera {
            let key = (row.make, row.model);
            let (dict, folded) = (self.dict, &self.folded);
            let ok = *self.camera_cache.entry(key).or_insert_with(|| {
                let name = |i: Option<u32>| i.map(|i| dict[i as usize].as_str());
                camera_name(name(key.0), name(key.1))
                    .is_some_and(|c| fold(&c).contains(want.as_str()))
                    || key
                        .1
                        .is_some_and(|m| folded[m as usize].contains(want.as_str()))
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

/// The year and month of a capture time ("2023-06"), for grouping results by month.
pub fn month_of(t: &NaiveDateTime) -> String {
    format!("{:04}-{:02}", t.year(), t.month())
}

/// Milliseconds since the epoch as ISO 8601 UTC, to the second.
pub fn utc_iso(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// [`month_of`] a time in wall-clock milliseconds ([`local_ms`]).
pub fn month_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| month_of(&d.naive_utc()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> i64 {
        local_ms(&NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap())
    }

    #[test]
    fn periods() {
        let y: DateBound = "2023".parse().unwrap();
        assert_eq!(
            (y.start.to_string(), y.end.to_string()),
            ("2023-01-01 00:00:00".into(), "2024-01-01 00:00:00".into())
        );
        let m: DateBound = "2023-12".parse().unwrap();
        assert_eq!(m.end.to_string(), "2024-01-01 00:00:00");
        let d: DateBound = "2024-02-29".parse().unwrap();
        assert_eq!(d.end.to_string(), "2024-03-01 00:00:00");
        for bad in ["2023-13", "2023-02-30", "23", "June", "2023-06-14T10", ""] {
            assert!(bad.parse::<DateBound>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_are_inclusive_periods() {
        let mut f = Filter::default();
        f.set("after", "2023-06").unwrap();
        f.set("before", "2023-08").unwrap();
        let dict = vec![];
        let mut c = f.compile(&dict);
        let row = |s: &str| RowFields {
            taken_ms: Some(dt(s)),
            ..Default::default()
        };
        assert!(c.matches(&row("2023-06-01 00:00:00")));
        assert!(c.matches(&row("2023-08-31 23:59:59")));
        assert!(!c.matches(&row("2023-05-31 23:59:59")));
        assert!(!c.matches(&row("2023-09-01 00:00:00")));
        assert!(!c.matches(&RowFields::default()), "no date, no match");
        let mut g = Filter::default();
        g.set("after", "2024").unwrap();
        assert!(g.set("before", "2023").is_err());
    }

    #[test]
    fn places_cameras_formats() {
        let dict: Vec<String> = [
            "Zürich",
            "Zurich",
            "CH",
            "NIKON CORPORATION",
            "NIKON D850",
            "JPEG",
            "DNG",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let row = RowFields {
            city: Some(0),
            region: Some(1),
            country: Some(2),
            make: Some(3),
            model: Some(4),
            format: Some(6),
            ..Default::default()
        };
        let check = |key: &str, value: &str| {
            let mut f = Filter::default();
            f.set(key, value).unwrap();
            f.compile(&dict).matches(&row)
        };
        assert!(check("place", "zurich"));
        assert!(check("place", "ZÜRICH, Switzerland"));
        assert!(check("place", "che"));
        assert!(!check("place", "Zurich, Austria"));
        assert!(!check("place", "Zur"));
        assert!(check("camera", "nikon d850"));
        assert!(check("camera", "D850"));
        assert!(!check("camera", "canon"));
        assert!(check("format", "raw"));
        assert!(check("format", "jpeg,dng"));
        assert!(!check("format", "jpg"));
        assert!(!check("near", "47.37,8.54,10"), "no position, no match");
    }

    #[test]
    fn near_needs_a_position() {
        let mut f = Filter::default();
        f.set("near", "47.37,8.54,10km").unwrap();
        let dict = vec![];
        let mut c = f.compile(&dict);
        let at = |lat, lon| RowFields {
            gps: Some((lat, lon)),
            ..Default::default()
        };
        assert!(c.matches(&at(47.4, 8.5)));
        assert!(!c.matches(&at(46.2, 6.1)), "Geneva is 220 km away");
        assert!(!c.matches(&RowFields::default()));
        for bad in ["47,8", "a,b,c", "95,0,1", "1,2,-3"] {
            assert!(bad.parse::<Near>().is_err(), "{bad}");
        }
    }
}
