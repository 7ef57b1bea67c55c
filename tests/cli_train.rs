//! `clipsearch demo-data`, `train`, `classify` and `demo` through the real binary.

mod support;

use support::*;

fn small_config(dir: &std::path::Path) -> std::path::PathBuf {
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_model().join("config.json")).unwrap())
            .unwrap();
    c["vision_config"]["image_size"] = 32.into();
    c["text_config"]["max_position_embeddings"] = 32.into();
    let path = dir.join("config.json");
    std::fs::write(&path, c.to_string()).unwrap();
    path
}

#[test]
fn train_from_scratch_resume_and_use_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("world");
    let out = run(clipsearch()
        .args(["demo-data", "--training", "--count", "40", "--size", "48"])
        .arg(&data));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(data.join("00039.png").is_file() && data.join("00039.txt").is_file());

    let config = small_config(tmp.path());
    let model = tmp.path().join("model");
    let train = |extra: &[&str]| {
        run(clipsearch()
            .arg("train")
            .arg(&data)
            .arg("--config")
            .arg(&config)
            .arg("--tokenizer")
            .arg(tiny_model().join("tokenizer.json"))
            .arg("--out")
            .arg(&model)
            .args(["--batch-size", "8", "--warmup", "2", "--json"])
            .args(extra))
    };
    let out = train(&["--steps", "4"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = &json_lines(&out)[0];
    assert_eq!(summary["steps_done"], 4);
    assert!(summary["last_loss"].as_f64().unwrap().is_finite());

    // Not again into the same place by accident...
    let out = train(&["--steps", "4"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    // ...but continued on purpose.
    let out = train(&["--steps", "8", "--resume"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json_lines(&out)[0]["steps_done"], 8);

    // The result is a model like any other.
    let out = run(clipsearch()
        .args(["embed", "--json", "--text", "a red circle", "--model"])
        .arg(&model));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        json_lines(&out)[0]["embedding"].as_array().unwrap().len(),
        32
    );

    // Fine-tuning starts from a checkpoint's weights.
    let tuned = tmp.path().join("tuned");
    let out = run(clipsearch()
        .arg("train")
        .arg(&data)
        .arg("--init")
        .arg(tiny_model())
        .arg("--out")
        .arg(&tuned)
        .args([
            "--steps",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "1e-5",
            "--json",
        ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let before = run(clipsearch()
        .args(["embed", "--json", "--text", "a red circle", "--model"])
        .arg(tiny_model()));
    let after = run(clipsearch()
        .args(["embed", "--json", "--text", "a red circle", "--model"])
        .arg(&tuned));
    let vector = |out: &std::process::Output| -> Vec<f64> {
        json_lines(out)[0]["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let (start, tuned_vec) = (vector(&before), vector(&after));
    assert_eq!(start.len(), tuned_vec.len());
    let cos: f64 = start.iter().zip(&tuned_vec).map(|(a, b)| a * b).sum();
    let moved = start
        .iter()
        .zip(&tuned_vec)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    eprintln!("fine-tuned against initial text embedding: cosine {cos}, distance {moved:e}");
    // Started from the checkpoint (a random start would be far: cosine near 0), and moved by
    // more than rounding: two steps at lr 1e-5 moved the unit vector by 1.5e-4 (cosine
    // 1 - 5.4e-9, which is why the cosine alone cannot show it); f32 rounding of a unit vector
    // of 32 values moves it by under 1e-6.
    assert!(
        cos > 0.9,
        "fine-tuning did not start from the checkpoint: cosine {cos}"
    );
    assert!(
        moved > 1e-5,
        "fine-tuning did not move the embedding: distance {moved:e}"
    );

    // Bad data is reported with the file and line.
    let manifest = tmp.path().join("bad.jsonl");
    std::fs::write(&manifest, "{\"image\": \"x.png\"}\n").unwrap();
    let out = run(clipsearch()
        .arg("train")
        .arg(&manifest)
        .arg("--config")
        .arg(&config)
        .arg("--out")
        .arg(tmp.path().join("other")));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.jsonl:1"), "{}", stderr(&out));
}

#[test]
fn classify_prints_sorted_probabilities_and_reports_bad_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("world");
    run(clipsearch().args(["demo-data", "--count", "6"]).arg(&data));
    std::fs::write(data.join("broken.png"), b"not a png").unwrap();
    let out = run(clipsearch()
        .args(["classify", "--model", "demo", "--json", "-n", "6"])
        .args(["--labels", "circle,square,triangle,star,cross,heart"])
        .arg(&data));
    assert_eq!(
        out.status.code(),
        Some(4),
        "a bad image is reported: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("broken.png"), "{}", stderr(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 6, "the six good images are classified");
    for line in &lines {
        let labels = line["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 6);
        let probs: Vec<f64> = labels.iter().map(|l| l["prob"].as_f64().unwrap()).collect();
        assert!(probs.windows(2).all(|w| w[0] >= w[1]), "{probs:?}");
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-4, "{probs:?}");
    }
    let out = run(clipsearch()
        .args(["classify", "--model", "demo", "--labels", "circle"])
        .arg(&data));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("two distinct labels"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn demo_runs_offline_and_finds_what_it_is_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(clipsearch().args(["demo", "--dir"]).arg(tmp.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Reverse image lookup"), "{text}");
    let marked = |mark: char| {
        text.lines()
            .filter(|l| l.trim_start().starts_with(mark))
            .count()
    };
    let (right, wrong) = (marked('✓'), marked('✗'));
    assert_eq!(right + wrong, 15, "3 results for each of 5 queries: {text}");
    // About 1 image in 40 of the collection shows a given colour-shape combination: at least
    // half right is far above chance (the acceptance figures are tests/demo_model.rs's).
    assert!(
        right >= 8,
        "only {right} of 15 results match their query:\n{text}"
    );
    // A second run reuses the collection and the index.
    let out = run(clipsearch().args(["demo", "--dir"]).arg(tmp.path()));
    assert!(
        stdout(&out).contains("0 new, 300 unchanged"),
        "{}",
        stdout(&out)
    );
    // The search it suggests works from a folder that holds a folder named like the bundled
    // model (the index names its model "demo"; a folder of that name without a checkpoint
    // once shadowed it: "model directory demo has no config.json").
    assert!(
        text.contains("Try your own: clipsearch search --index"),
        "{text}"
    );
    std::fs::create_dir(tmp.path().join("demo")).unwrap();
    let out = run(clipsearch().current_dir(tmp.path()).args([
        "search",
        "two pink hearts",
        "--index",
        "index",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 10, "{}", stdout(&out));
}
