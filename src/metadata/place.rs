//! Places without a network: the nearest populated place to a GPS position, from GeoNames'
//! gazetteer of the ~145,000 places of 1,000 or more people (CC BY 4.0, through the
//! `reverse_geocoder` crate, which embeds it), loaded once, on the first position to place.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// A photo's place: its nearest town or city, the region (first-level division) and country.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub city: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// ISO 3166 alpha-2 code.
    pub country_code: String,
}

impl Place {
    /// The country's common English name ("Portugal", "United States").
    pub fn country(&self) -> String {
        country_name(&self.country_code)
    }

    /// "Lisbon, Portugal", "Sydney, New South Wales, Australia".
    pub fn label(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        for p in [&self.city, &self.region] {
            if !p.is_empty() && !parts.iter().any(|q| q == p) {
                parts.push(p.clone());
            }
        }
        parts.push(self.country());
        parts.join(", ")
    }
}

/// Positions farther than this from every place in the gazetteer get no city (the middle of
/// a national park or a sea): the nearest town would be a wrong answer.
const CITY_KM: f64 = 50.0;
/// ... and no region or country farther than this (open sea).
const COUNTRY_KM: f64 = 150.0;
const EARTH_KM: f64 = 6371.0;

fn geocoder() -> &'static reverse_geocoder::ReverseGeocoder {
    static G: OnceLock<reverse_geocoder::ReverseGeocoder> = OnceLock::new();
    G.get_or_init(|| {
        let t = std::time::Instant::now();
        let g = reverse_geocoder::ReverseGeocoder::new();
        tracing::debug!(ms = t.elapsed().as_millis() as u64, "gazetteer loaded");
        g
    })
}

/// The place of a position, or None far from any.
pub fn locate(lat: f64, lon: f64) -> Option<Place> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return None;
    }
    let found = geocoder().search((lat, lon));
    // The crate's distance is the squared chord on the unit sphere.
    let chord = found.distance.max(0.0).sqrt().min(2.0);
    let km = 2.0 * EARTH_KM * (chord / 2.0).asin();
    if km > COUNTRY_KM {
        return None;
    }
    let r = found.record;
    Some(Place {
        city: if km <= CITY_KM {
            r.name.clone()
        } else {
            String::new()
        },
        region: r.admin1.clone(),
        country_code: r.cc.clone(),
    })
}

/// Great-circle distance in kilometres.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
}

/// Names people use where ISO 3166's official one is long or formal.
const COMMON: &[(&str, &str)] = &[
    ("US", "United States"),
    ("GB", "United Kingdom"),
    ("KR", "South Korea"),
    ("KP", "North Korea"),
    ("RU", "Russia"),
    ("IR", "Iran"),
    ("VN", "Vietnam"),
    ("TW", "Taiwan"),
    ("BO", "Bolivia"),
    ("VE", "Venezuela"),
    ("TZ", "Tanzania"),
    ("SY", "Syria"),
    ("LA", "Laos"),
    ("MD", "Moldova"),
    ("FM", "Micronesia"),
    ("CD", "DR Congo"),
    ("BN", "Brunei"),
    ("PS", "Palestine"),
    ("VA", "Vatican City"),
    ("CZ", "Czech Republic"),
    ("NL", "Netherlands"),
    ("MK", "North Macedonia"),
    ("CV", "Cape Verde"),
    ("SZ", "Eswatini"),
    ("TR", "Turkey"),
];

/// A country's common English name from its alpha-2 code (the code itself if unknown).
pub fn country_name(code: &str) -> String {
    if let Some((_, n)) = COMMON.iter().find(|(c, _)| *c == code) {
        return n.to_string();
    }
    isocountry::CountryCode::for_alpha2(code)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|_| code.to_string())
}

/// Every name a country answers to: its common name, ISO's official one, and its two- and
/// three-letter codes.
pub fn country_names(code: &str) -> Vec<String> {
    let mut out = vec![country_name(code), code.to_string()];
    if let Ok(c) = isocountry::CountryCode::for_alpha2(code) {
        out.push(c.name().to_string());
        out.push(c.alpha3().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_cities_on_both_hemispheres() {
        let lisbon = locate(38.7223, -9.1393).expect("Lisbon");
        assert_eq!(lisbon.country(), "Portugal");
        assert_eq!(lisbon.city, "Lisbon");
        let sydney = locate(-33.8688, 151.2093).expect("Sydney");
        assert_eq!(sydney.country_code, "AU");
        // Mid-Atlantic: no place.
        assert_eq!(locate(30.0, -40.0), None);
        assert_eq!(locate(91.0, 0.0), None);
    }

    #[test]
    fn distances() {
        // Lisbon to Porto: about 274 km.
        let d = distance_km((38.7223, -9.1393), (41.1579, -8.6291));
        assert!((d - 274.0).abs() < 5.0, "{d}");
        assert_eq!(country_name("US"), "United States");
        assert_eq!(country_name("PT"), "Portugal");
        assert!(country_names("US").iter().any(|n| n == "USA"));
    }
}
