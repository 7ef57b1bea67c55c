//! Each model family's fixture through the real binary: `index`, `search` (English and
//! non-ASCII queries), `classify` (SigLIP's sigmoid, CLIP's softmax), `stats`, `serve`, and what
//! is refused. Every score is checked against the reference library's features for the same
//! inputs (`tests/fixtures/reference/tiny_*_reference.json`: transformers for SigLIP, open_clip
//! for OpenCLIP's layout).

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn siglip() -> PathBuf {
    fixtures().join("tiny-siglip")
}

fn openclip() -> PathBuf {
    fixtures().join("tiny-openclip")
}

struct Reference {
    images: Vec<String>,
    texts: Vec<String>,
    text: Vec<Vec<f32>>,
    /// Our target per image (normalised), where the reference has one: it embeds the EXIF file
    /// unrotated, and open_clip drops alpha; the OpenCLIP fixture carries targets for both.
    image: Vec<Option<Vec<f32>>>,
    probs: Vec<Vec<f32>>,
    logit_scale: f32,
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn reference(name: &str) -> Reference {
    let path = fixtures().join(format!("reference/tiny_{name}_reference.json"));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let get = |k: &str| serde_json::from_value(j[k].clone()).unwrap();
    let rows =
        |k: &str| -> Vec<Vec<f32>> { serde_json::from_value(j[k].clone()).unwrap_or_default() };
    let images: Vec<String> = get("images");
    let targets = rows("image_features_targets");
    let image = images
        .iter()
        .zip(rows("image_features_raw"))
        .map(|(name, v)| match targets.as_slice() {
            [upright, _] if name.contains("exif") => Some(unit(upright)),
            [_, over_white] if name.contains("rgba") => Some(unit(over_white)),
            _ if name.contains("exif") => None,
            _ => Some(unit(&v)),
        })
        .collect();
    Reference {
        images,
        texts: get("texts"),
        text: rows("text_features_raw").iter().map(|v| unit(v)).collect(),
        image,
        probs: rows("probs_per_image"),
        logit_scale: j["logit_scale"].as_f64().map_or(0.0, |v| v as f32),
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The reference's scores of `text` against every image it has a target for, best first.
fn expected(r: &Reference, text: usize) -> Vec<(String, f32)> {
    let mut want: Vec<(String, f32)> = r
        .images
        .iter()
        .zip(&r.image)
        .filter_map(|(name, v)| Some((name.clone(), dot(&r.text[text], v.as_ref()?))))
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
        .filter(|(name, _)| want.iter().any(|(w, _)| w == name))
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

/// Indexes the reference images with `model`, then checks searches for `queries` (indices into
/// the reference's texts), `stats` and the server against the reference's scores.
fn index_search_serve(r: &Reference, model: &Path, family: &str, queries: &[usize]) {
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join("index");
    let out = run(clipsearch()
        .arg("index")
        .arg(reference_images())
        .arg("--index")
        .arg(&index)
        .arg("--model")
        .arg(model)
        .arg("--json"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["indexed"], 8, "{}", stdout(&out));
    for &text in queries {
        let results = search_json(&index, &[&r.texts[text], "-n", "8"]);
        check_results(&results, &expected(r, text));
    }
    let stats = run(clipsearch()
        .args(["stats", "--json", "--index"])
        .arg(&index));
    assert_eq!(
        json_lines(&stats)[0]["family"],
        family,
        "{}",
        stdout(&stats)
    );
    // The server answers the same query with the same order and scores.
    let server = serve(&index, &[]);
    let q: String = r.texts[queries[0]]
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = http_get(&server.addr, &format!("/api/search?q={q}&n=8"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let results = json["results"].as_array().unwrap().clone();
    check_results(&results, &expected(r, queries[0]));
}

#[test]
fn a_siglip_index_answers_as_the_reference_computes() {
    // English, French, and a Japanese query through the byte-fallback tokenizer, unchanged on
    // the way.
    index_search_serve(&reference("siglip"), &siglip(), "siglip", &[1, 6, 7]);
}

#[test]
fn a_multilingual_index_answers_french_and_english_as_open_clip_computes() {
    // XLM-RoBERTa's text tower: the server gets the French query percent-encoded.
    let r = reference("xlmr_clip");
    index_search_serve(&r, &fixtures().join("tiny-xlmr-clip"), "clip", &[1, 0, 3]);
}

#[test]
fn a_mobileclip_index_answers_as_open_clip_computes() {
    // FastViT images, CLIP text without a causal mask over padded input.
    let r = reference("mobileclip");
    index_search_serve(&r, &fixtures().join("tiny-mobileclip"), "clip", &[1, 0, 3]);
}

#[test]
fn an_openclip_index_answers_as_open_clip_computes() {
    // Accented text through the built-in BPE (the checkpoint ships no tokenizer.json).
    index_search_serve(&reference("openclip"), &openclip(), "clip", &[1, 2, 5]);
}

/// `classify IMAGE --labels (the first four texts) --template {}`: label -> probability.
fn classify(model: &Path, r: &Reference) -> Vec<(usize, f32)> {
    let labels = r.texts[..4].join(",");
    let out = run(clipsearch()
        .arg("classify")
        .arg(reference_images().join("coffee.png"))
        .arg("--model")
        .arg(model)
        .args(["--labels", &labels, "--template", "{}", "-n", "4", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let scored = json_lines(&out)[0]["labels"].as_array().unwrap().clone();
    assert_eq!(scored.len(), 4);
    scored
        .iter()
        .map(|s| {
            let label = s["label"].as_str().unwrap();
            let j = r.texts.iter().position(|t| t == label).unwrap();
            (j, s["prob"].as_f64().unwrap() as f32)
        })
        .collect()
}

#[test]
fn classify_with_siglip_scores_each_label_with_the_sigmoid() {
    let r = reference("siglip");
    let coffee = r.images.iter().position(|n| n == "coffee.png").unwrap();
    let mut total = 0.0;
    for (j, prob) in classify(&siglip(), &r) {
        assert!(
            (prob - r.probs[coffee][j]).abs() < 1e-5,
            "{}: {prob}",
            r.texts[j]
        );
        total += prob;
    }
    // Independent per label: not a distribution over them.
    assert!((total - 1.0).abs() > 0.05, "probabilities sum to {total}");
}

#[test]
fn classify_with_openclip_is_the_softmax_at_its_temperature() {
    let r = reference("openclip");
    let coffee = r.images.iter().position(|n| n == "coffee.png").unwrap();
    let image = r.image[coffee].as_ref().unwrap();
    let logits: Vec<f32> = (0..4)
        .map(|j| r.logit_scale.exp() * dot(image, &r.text[j]))
        .collect();
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let mut total = 0.0;
    for (j, prob) in classify(&openclip(), &r) {
        let want = (logits[j] - max).exp() / sum;
        assert!(
            (prob - want).abs() < 1e-5,
            "{}: {prob} vs {want}",
            r.texts[j]
        );
        total += prob;
    }
    assert!(
        (total - 1.0).abs() < 1e-5,
        "a distribution over the labels: {total}"
    );
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

#[test]
fn models_lists_every_family_and_a_closed_pipe_is_not_an_error() {
    let out = run(clipsearch().args(["models", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let rows = json_lines(&out);
    for family in ["clip", "siglip"] {
        assert!(rows.iter().any(|r| r["family"] == family), "{rows:?}");
    }
    // Computed for every ViT (null for the convolutional FastViT towers).
    assert!(rows
        .iter()
        .all(|r| r["image_gmac"].is_null() || r["image_gmac"].as_f64().unwrap() > 1.0));
    assert!(rows.iter().any(|r| r["image_gmac"].is_null()));
    // A reader that stops early (`clipsearch models | head -1`): exit 0, nothing on stderr.
    let mut child = clipsearch()
        .arg("models")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(&out));
    assert_eq!(stderr(&out), "");
}
