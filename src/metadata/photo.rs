//! What the catalog records about a photo besides its pixels ([`PhotoMeta`]: capture time,
//! position, place, camera, lens, orientation, format), and the name folding that matching on
//! it uses.
//!
//! A leaf under [`super::read`], which fills these records, and [`super::filter`], which
//! selects by them; [`super`] re-exports them, and is where everything outside names them.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::place::Place;

/// Where the capture time came from, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// EXIF `DateTimeOriginal`: when the shutter fired.
    DateTimeOriginal,
    /// EXIF `DateTimeDigitized`.
    DateTimeDigitized,
    /// EXIF `DateTime` (IFD0): often the last edit.
    DateTime,
    /// XMP (`exif:DateTimeOriginal`, `xmp:CreateDate` or `photoshop:DateCreated`).
    Xmp,
    /// The file's modification time, in this machine's time zone: a guess.
    FileModified,
}

impl TimeSource {
    pub fn code(self) -> u8 {
        match self {
            TimeSource::DateTimeOriginal => 1,
            TimeSource::DateTimeDigitized => 2,
            TimeSource::DateTime => 3,
            TimeSource::Xmp => 4,
            TimeSource::FileModified => 5,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        Some(match c {
            1 => TimeSource::DateTimeOriginal,
            2 => TimeSource::DateTimeDigitized,
            3 => TimeSource::DateTime,
            4 => TimeSource::Xmp,
            5 => TimeSource::FileModified,
            _ => return None,
        })
    }

    /// Whether the time was recorded by the camera (not guessed from the file).
    pub fn is_recorded(self) -> bool {
        self != TimeSource::FileModified
    }
}

/// The capture time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Taken {
    /// Wall-clock time where the photo was taken (milliseconds kept).
    pub local: NaiveDateTime,
    /// Its offset from UTC in minutes, when recorded (`OffsetTimeOriginal`, XMP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset_minutes: Option<i16>,
    pub source: TimeSource,
}

impl Taken {
    /// ISO 8601, with the offset when known: `2023-06-14T10:03:12.250+01:00`.
    pub fn iso(&self) -> String {
        let mut s = self.local.format("%Y-%m-%dT%H:%M:%S").to_string();
        let ms = self.local.and_utc().timestamp_subsec_millis();
        if ms > 0 {
            s.push_str(&format!(".{ms:03}"));
        }
        if let Some(m) = self.offset_minutes {
            let sign = if m < 0 { '-' } else { '+' };
            s.push_str(&format!("{sign}{:02}:{:02}", m.abs() / 60, m.abs() % 60));
        }
        s
    }
}

/// A GPS position in degrees (WGS 84), altitude in metres above sea level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gps {
    pub lat: f64,
    pub lon: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt: Option<f64>,
}

/// What the catalog knows about a photo besides its pixels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PhotoMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken: Option<Taken>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gps: Option<Gps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<Place>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub make: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lens: Option<String>,
    /// EXIF orientation (1-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orientation: Option<u8>,
    /// The file's format, by content ("JPEG", "PNG", "HEIC", "DNG", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl PhotoMeta {
    /// Make and model as people say them: "Canon EOS R5", not "Canon Canon EOS R5".
    pub fn camera(&self) -> Option<String> {
        camera_name(self.make.as_deref(), self.model.as_deref())
    }

    /// Its strings in the order views store them: make, model, lens, city, region, country
    /// code, format (empty city or region as none).
    pub fn strings(&self) -> [Option<&str>; 7] {
        let place = self.place.as_ref();
        [
            self.make.as_deref(),
            self.model.as_deref(),
            self.lens.as_deref(),
            place.map(|p| p.city.as_str()).filter(|s| !s.is_empty()),
            place.map(|p| p.region.as_str()).filter(|s| !s.is_empty()),
            place.map(|p| p.country_code.as_str()),
            self.format.as_deref(),
        ]
    }
}

/// Make and model joined, without the make twice.
pub fn camera_name(make: Option<&str>, model: Option<&str>) -> Option<String> {
    match (make, model) {
        (None, None) => None,
        (Some(m), None) | (None, Some(m)) => Some(m.to_string()),
        (Some(make), Some(model)) => {
            // "NIKON CORPORATION" + "NIKON D850": the model already says who made it.
            let first = make.split_whitespace().next().unwrap_or(make);
            if fold(model).starts_with(&fold(first)) {
                Some(model.to_string())
            } else {
                Some(format!("{make} {model}"))
            }
        }
    }
}

/// Lower-case ASCII transliteration, for case- and accent-insensitive matching ("Zürich",
/// "ZURICH" and "zurich" fold alike; GeoNames' names are ASCII already).
pub fn fold(s: &str) -> String {
    deunicode::deunicode(s).to_lowercase()
}
