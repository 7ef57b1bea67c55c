//! `clipsearch embed`, run as a user runs it.

mod support;

use support::*;

fn reference_json() -> serde_json::Value {
    let path = fixtures().join("reference/tiny_clip_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn text_embedding_json_is_the_reference_normalised_embedding() {
    let out = run(clipsearch()
        .args(["embed", "--text", "a photo of a cat", "--json", "--model"])
        .arg(tiny_model()));
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "text");
    assert_eq!(lines[0]["input"], "a photo of a cat");
    let ours: Vec<f64> = serde_json::from_value(lines[0]["embedding"].clone()).unwrap();
    let r = reference_json();
    let i = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .position(|t| t == "a photo of a cat")
        .unwrap();
    let want: Vec<f64> = serde_json::from_value(r["text_embeds_normalized"][i].clone()).unwrap();
    assert_eq!(ours.len(), want.len());
    for (a, b) in ours.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-4, "{a} vs {b}");
    }
}

#[test]
fn one_line_per_input_in_order() {
    let out = run(clipsearch()
        .args(["embed", "--text", "one", "--text", "two", "--image"])
        .arg(reference_images().join("coffee.png"))
        .arg("--model")
        .arg(tiny_model()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("text\tone\t"));
    assert!(lines[1].starts_with("text\ttwo\t"));
    assert!(lines[2].starts_with("image\t") && lines[2].contains("coffee.png"));
    let values: Vec<f32> = lines[2]
        .split('\t')
        .nth(2)
        .unwrap()
        .split(' ')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 32);
    let norm: f32 = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "normalised, got {norm}");
}

#[test]
fn corrupt_image_is_a_one_line_error_with_path_and_nonzero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.jpg");
    let good = std::fs::read(reference_images().join("chelsea.jpg")).unwrap();
    std::fs::write(&bad, &good[..good.len() / 3]).unwrap();
    let text = dir.path().join("notes.png");
    std::fs::write(&text, "just text").unwrap();
    let out = run(clipsearch()
        .args(["embed", "--image"])
        .arg(&bad)
        .arg("--image")
        .arg(&text)
        .arg("--image")
        .arg(reference_images().join("rocket.jpg"))
        .arg("--model")
        .arg(tiny_model()));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    let err_lines: Vec<&str> = err.lines().collect();
    assert_eq!(err_lines.len(), 2, "one line per bad image: {err}");
    assert!(err_lines[0].contains("broken.jpg"), "{err}");
    assert!(err_lines[1].contains("notes.png") && err_lines[1].contains("not an image"));
    assert!(!err.contains("panicked"));
    // The good image is still embedded.
    assert_eq!(stdout(&out).lines().count(), 1);
}

#[test]
fn model_problems_exit_3_with_guidance() {
    let out = run(clipsearch().args(["embed", "--text", "x", "--model", "/nonexistent/model/dir"]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );

    let home = tempfile::tempdir().unwrap();
    let out = run(clipsearch()
        .env("HF_HOME", home.path())
        .args(["embed", "--text", "x"]));
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(
        err.contains("openai/clip-vit-base-patch32") && err.contains("--model"),
        "{err}"
    );
}

#[test]
fn nothing_to_embed_is_a_usage_error() {
    let out = run(clipsearch().args(["embed", "--model"]).arg(tiny_model()));
    assert_eq!(out.status.code(), Some(2));
}
