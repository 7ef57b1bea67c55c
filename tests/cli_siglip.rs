//! A SigLIP checkpoint through the real binary: `index`, `search` (English and non-ASCII
//! queries), `classify` (sigmoid scores), `stats`, `serve`, and what is refused (`--fast`).
//! Every score is checked against the reference's features for the same inputs
//! (`tests/fixtures/reference/tiny_siglip_reference.json`, written by transformers).

mod support;

use std::path::PathBuf;

use support::*;

fn siglip() -> PathBuf {
    fixtures().join("tiny-siglip")
}

struct Reference {
    images: Vec<String>,
    texts: Vec<String>,
    text: Vec<Vec<f32>>,
    image: Vec<Vec<f32>>,
    probs: Vec<Vec<f32>>,
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn reference() -> Reference {
    let path = fixtures().join("reference/tiny_siglip_reference.json");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let get = |k: &str| serde_json::from_value(j[k].clone()).unwrap();
    let rows = |k: &str| -> Vec<Vec<f32>> { serde_json::from_value(j[k].clone()).unwrap() };
    Reference {
        images: get("images"),
        texts: get("texts"),
        text: rows("text_features_raw").iter().map(|v| unit(v)).collect(),
        image: rows("image_features_raw").iter().map(|v| unit(v)).collect(),
        probs: rows("probs_per_image"),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The reference's scores of `text` against every image but the EXIF-rotated one (the
/// reference embeds its unrotated pixels; we honour the rotation), best first.
fn expected(r: &Reference, text: usize) -> Vec<(String, f32)> {
    let mut want: Vec<(String, f32)> = r
        .images
        .iter()
        .zip(&r.image)
        .filter(|(name, _)| !name.contains("exif"))
        .map(|(name, v)| (name.clone(), dot(&r.text[text], v)))
        .collect();
    want.sort_by(|a, b| b.1.total_cmp(&a.1));
    want
}

fn check_results(results: &[serde_json::Value], want: &[(String, f32)]) {
    let got: Vec<(String, f32)> = results
        .iter()
        .map(|r| {
            let path = r["path"].as_str().unwrap();
            let name = path.rsplit('/').next().unwrap().to_string();
            (name, r["score"].as_f64().unwrap() as f32)
        })
        .filter(|(name, _)| !name.contains("exif"))
        .collect();
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((name, score), (want_name, want_score)) in got.iter().zip(want) {
        assert_eq!(name, want_name, "order: {got:?} vs {want:?}");
        assert!(
            (score - want_score).abs() < 1e-4,
            "{name}: {score} vs {want_score}"
        );
    }
}

#[test]
fn a_siglip_index_answers_as_the_reference_computes() {
    let r = reference();
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let model = siglip();
    let out = run(clipsearch()
        .arg("index")
        .arg(reference_images())
        .arg("--index")
        .arg(&index)
        .arg("--model")
        .arg(&model)
        .arg("--json"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["indexed"], 8, "{}", stdout(&out));

    // English, and a Japanese query through the byte-fallback tokenizer, unchanged on the way.
    for text in [1, 6, 7] {
        let results = search_json(&index, &[&r.texts[text], "-n", "8"]);
        check_results(&results, &expected(&r, text));
    }

    let stats = run(clipsearch()
        .args(["stats", "--json", "--index"])
        .arg(&index));
    assert_eq!(
        json_lines(&stats)[0]["family"],
        "siglip",
        "{}",
        stdout(&stats)
    );

    // The server answers the same query with the same order and scores.
    let server = serve(&index, &[]);
    let body = http_get(&server.addr, "/api/search?q=a%20cup%20of%20coffee&n=8");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let results = json["results"].as_array().unwrap().clone();
    check_results(&results, &expected(&r, 1));
}

fn http_get(addr: &str, target: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    reply.split("\r\n\r\n").nth(1).unwrap().to_string()
}

#[test]
fn classify_scores_each_label_with_the_sigmoid() {
    let r = reference();
    let coffee = r.images.iter().position(|n| n == "coffee.png").unwrap();
    let labels = r.texts[..4].join(",");
    let out = run(clipsearch()
        .arg("classify")
        .arg(reference_images().join("coffee.png"))
        .arg("--model")
        .arg(siglip())
        .args(["--labels", &labels, "--template", "{}", "-n", "4", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let line = &json_lines(&out)[0];
    let scored = line["labels"].as_array().unwrap();
    assert_eq!(scored.len(), 4);
    let mut total = 0.0;
    for s in scored {
        let label = s["label"].as_str().unwrap();
        let j = r.texts.iter().position(|t| t == label).unwrap();
        let prob = s["prob"].as_f64().unwrap() as f32;
        assert!((prob - r.probs[coffee][j]).abs() < 1e-5, "{label}: {prob}");
        total += prob;
    }
    // Independent per label: not a distribution over them.
    assert!((total - 1.0).abs() > 0.05, "probabilities sum to {total}");
}

#[test]
fn fast_mode_is_refused_for_siglip_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(clipsearch()
        .arg("index")
        .arg(reference_images())
        .arg("--index")
        .arg(tmp.path().join("index"))
        .arg("--model")
        .arg(siglip())
        .arg("--fast"));
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("CLIP only") && err.contains("without --fast"),
        "{err}"
    );
}
