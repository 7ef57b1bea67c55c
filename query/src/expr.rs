//! Combined query expressions.
//!
//! Grammar (one term per command-line argument, so the shell's quoting does the tokenising):
//!
//! ```text
//! expression := term (("+" | "-") term)*
//! term       := ["+" | "-"] [WEIGHT ":"] item
//! item       := "text:" TEXT | "image:" PATH | PATH-of-an-existing-image | TEXT
//! ```
//!
//! `clipsearch search beach + dog - people`, `2:sunset + ./ref.jpg`, `image:cat.png - text:cat`.
//! The query vector is the weighted sum of the terms' normalised embeddings, renormalised.
//!
//! Filters and the order may also be written inline, anywhere in the query ([`parse_query`]):
//! `KEY:VALUE` words with KEY one of `after`, `before`, `camera`, `place`, `near`, `format`,
//! `sort`, and a VALUE with spaces in double quotes: `dog on a beach after:2023-06
//! place:"New York" sort:-date`. They are taken out of the text before it is embedded.

use std::path::{Path, PathBuf};

use clipsearch::metadata::filter::{FilterError, KEYS};
use clipsearch::metadata::{Filter, SortOrder};

/// What a term refers to.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Text(String),
    Image(PathBuf),
}

/// One signed, weighted term.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    pub weight: f32,
    pub item: Item,
}

/// Parse errors, worded for the user.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("empty query: give some text or an image path")]
    Empty,
    #[error("`{0}` at the end of the query needs a term after it")]
    DanglingOperator(String),
    #[error("two terms without `+` or `-` between them: `{0}` `{1}` (quote a text with spaces as one argument)")]
    MissingOperator(String, String),
    #[error("bad weight in `{0}`: expected a number before `:`")]
    BadWeight(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// A query: what to look for (no terms: filters only), which files, in what order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParsedQuery {
    pub terms: Vec<Term>,
    pub filter: Filter,
    pub sort: Option<SortOrder>,
}

/// Takes the inline `KEY:VALUE` filters (and `sort:`) out of `text` into `filter` and `sort`;
/// returns the rest, spaces tidied.
pub fn extract_inline(
    text: &str,
    filter: &mut Filter,
    sort: &mut Option<SortOrder>,
) -> Result<String, ParseError> {
    let mut rest = String::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let mut word_start = true;
    while let Some((i, c)) = chars.next() {
        if word_start && !c.is_whitespace() {
            let tail = &text[i..];
            let key = KEYS
                .iter()
                .chain(std::iter::once(&"sort"))
                .find(|k| tail.starts_with(&format!("{k}:")));
            if let Some(key) = key {
                let after = &tail[key.len() + 1..];
                let (value, used) = match after.strip_prefix('"') {
                    Some(q) => match q.find('"') {
                        Some(end) => (&q[..end], end + 2),
                        None => (q, after.len()),
                    },
                    None => {
                        let end = after.find(char::is_whitespace).unwrap_or(after.len());
                        (&after[..end], end)
                    }
                };
                if *key == "sort" {
                    *sort = Some(value.parse()?);
                } else {
                    filter.set(key, value)?;
                }
                let skip_to = i + key.len() + 1 + used;
                while chars.peek().is_some_and(|(j, _)| *j < skip_to) {
                    chars.next();
                }
                word_start = true;
                continue;
            }
        }
        word_start = c.is_whitespace();
        rest.push(c);
    }
    Ok(rest.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Parses command-line arguments into terms, with inline filters taken out. An argument that
/// held only filters goes with the operator before it; no terms and no filters is an error.
pub fn parse_query(args: &[String]) -> Result<ParsedQuery, ParseError> {
    let mut q = ParsedQuery::default();
    let mut kept: Vec<String> = Vec::new();
    for a in args {
        if a == "+" || a == "-" {
            kept.push(a.clone());
            continue;
        }
        // `text:` and `image:` terms are taken as written.
        let clean = if a.starts_with("text:") || a.starts_with("image:") {
            a.clone()
        } else {
            extract_inline(a, &mut q.filter, &mut q.sort)?
        };
        if clean.is_empty() {
            if kept.last().is_some_and(|k| k == "+" || k == "-") {
                kept.pop();
            }
        } else {
            kept.push(clean);
        }
    }
    while kept.first().is_some_and(|k| k == "+") {
        kept.remove(0);
    }
    if kept.is_empty() {
        if q.filter.is_empty() {
            return Err(ParseError::Empty);
        }
        return Ok(q);
    }
    q.terms = parse(&kept)?;
    Ok(q)
}

fn looks_like_image(s: &str) -> bool {
    let p = Path::new(s);
    p.is_file()
        && p.extension()
            .and_then(|e| e.to_str())
            .map(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "webp" | "gif" | "bmp" | "tif" | "tiff"
                )
            })
            .unwrap_or(false)
}

fn parse_item(s: &str) -> Item {
    if let Some(t) = s.strip_prefix("text:") {
        Item::Text(t.to_string())
    } else if let Some(p) = s.strip_prefix("image:") {
        Item::Image(PathBuf::from(p))
    } else if looks_like_image(s) {
        Item::Image(PathBuf::from(s))
    } else {
        Item::Text(s.to_string())
    }
}

fn parse_term(raw: &str, sign: f32) -> Result<Term, ParseError> {
    let (sign, body) = match raw.strip_prefix('-') {
        Some(rest) if !rest.is_empty() && !rest.starts_with(' ') => (-sign, rest),
        _ => match raw.strip_prefix('+') {
            Some(rest) if !rest.is_empty() => (sign, rest),
            _ => (sign, raw),
        },
    };
    // `2:sunset`, `0.5:image:x.jpg`; `text:` and `image:` are prefixes, not weights.
    if let Some((w, rest)) = body.split_once(':') {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_digit() || c == '.') {
            let weight: f32 = w
                .parse()
                .map_err(|_| ParseError::BadWeight(raw.to_string()))?;
            return Ok(Term {
                weight: sign * weight,
                item: parse_item(rest),
            });
        }
    }
    Ok(Term {
        weight: sign,
        item: parse_item(body),
    })
}

/// Parses command-line arguments into terms.
pub fn parse(args: &[String]) -> Result<Vec<Term>, ParseError> {
    let mut terms = Vec::new();
    let mut sign: Option<f32> = Some(1.0);
    for (i, a) in args.iter().enumerate() {
        match a.as_str() {
            "+" | "-" => {
                if sign.is_some() && !terms.is_empty() {
                    return Err(ParseError::DanglingOperator(a.clone()));
                }
                sign = Some(if a == "-" { -1.0 } else { 1.0 });
            }
            _ => {
                let Some(s) = sign.take() else {
                    return Err(ParseError::MissingOperator(args[i - 1].clone(), a.clone()));
                };
                terms.push(parse_term(a, s)?);
            }
        }
    }
    if let Some(op) = args.last().filter(|a| *a == "+" || *a == "-") {
        return Err(ParseError::DanglingOperator(op.clone()));
    }
    if terms.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(terms)
}

/// Weighted sum of normalised vectors, renormalised.
pub fn combine(parts: &[(f32, Vec<f32>)]) -> Vec<f32> {
    let dim = parts.first().map(|(_, v)| v.len()).unwrap_or(0);
    let mut out = vec![0f32; dim];
    for (w, v) in parts {
        for (o, x) in out.iter_mut().zip(v) {
            *o += w * x;
        }
    }
    clipsearch::embedding::normalize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn text(w: f32, t: &str) -> Term {
        Term {
            weight: w,
            item: Item::Text(t.into()),
        }
    }

    #[test]
    fn signs_weights_and_prefixes() {
        let t = parse(&args(&["beach", "+", "dog", "-", "people"])).unwrap();
        assert_eq!(
            t,
            vec![text(1.0, "beach"), text(1.0, "dog"), text(-1.0, "people")]
        );
        let t = parse(&args(&[
            "2:sunset",
            "-",
            "0.5:text:red car",
            "+",
            "image:x.jpg",
        ]))
        .unwrap();
        assert_eq!(t[0], text(2.0, "sunset"));
        assert_eq!(t[1], text(-0.5, "red car"));
        assert_eq!(t[2].item, Item::Image("x.jpg".into()));
        let t = parse(&args(&["dog on a beach"])).unwrap();
        assert_eq!(t, vec![text(1.0, "dog on a beach")]);
        let t = parse(&args(&["-people"])).unwrap();
        assert_eq!(t, vec![text(-1.0, "people")]);
        let t = parse(&args(&["text:12:30 clock"])).unwrap();
        assert_eq!(t, vec![text(1.0, "12:30 clock")]);
    }

    #[test]
    fn malformed_expressions_are_explained() {
        assert_eq!(parse(&[]), Err(ParseError::Empty));
        assert!(matches!(
            parse(&args(&["a", "+"])),
            Err(ParseError::DanglingOperator(_))
        ));
        assert!(matches!(
            parse(&args(&["a", "b"])),
            Err(ParseError::MissingOperator(_, _))
        ));
        assert!(matches!(
            parse(&args(&["1.2.3:x"])),
            Err(ParseError::BadWeight(_))
        ));
    }

    #[test]
    fn inline_filters_leave_the_text() {
        let q = parse_query(&args(&[
            "dog on a beach after:2023-06 place:\"New York\" sort:-date",
        ]))
        .unwrap();
        assert_eq!(q.terms, vec![text(1.0, "dog on a beach")]);
        assert_eq!(q.filter.after.as_ref().unwrap().text, "2023-06");
        assert_eq!(q.filter.place.as_deref(), Some("New York"));
        assert_eq!(q.sort, Some(SortOrder::DateDesc));
        // A filter as its own argument, with the operator before it.
        let q = parse_query(&args(&["dog", "+", "camera:canon", "-", "cat"])).unwrap();
        assert_eq!(q.terms, vec![text(1.0, "dog"), text(-1.0, "cat")]);
        assert_eq!(q.filter.camera.as_deref(), Some("canon"));
        // Filters alone are a query; nothing at all is not, nor is an empty text.
        let q = parse_query(&args(&["format:heic before:2020"])).unwrap();
        assert!(q.terms.is_empty() && !q.filter.is_empty());
        assert_eq!(parse_query(&args(&[""])), Err(ParseError::Empty));
        assert_eq!(parse_query(&args(&["  "])), Err(ParseError::Empty));
        // Words that merely contain a key, and non-ASCII text, pass through unchanged.
        let q = parse_query(&args(&["preplace:x chien sur une plage à Zürich"])).unwrap();
        assert_eq!(
            q.terms,
            vec![text(1.0, "preplace:x chien sur une plage à Zürich")]
        );
        assert!(parse_query(&args(&["dog after:June"])).is_err());
        assert!(parse_query(&args(&["dog sort:size"])).is_err());
    }

    #[test]
    fn combination_is_renormalised() {
        let v = combine(&[(1.0, vec![1.0, 0.0]), (1.0, vec![0.0, 1.0])]);
        assert!((v[0] - 0.70710677).abs() < 1e-6 && (v[1] - 0.70710677).abs() < 1e-6);
        let v = combine(&[(2.0, vec![1.0, 0.0]), (-1.0, vec![0.0, 1.0])]);
        assert!((v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[0] > 0.0 && v[1] < 0.0);
    }
}
