//! `clipsearch search`, `similar` and `dupes` end to end with the tiny fixture model.

mod support;

use std::path::{Path, PathBuf};

use support::*;

/// Ten distinct photos in two folders, plus a half-size re-encoded copy of one of them.
fn indexed_collection() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    for (i, sub) in ["beach", "city"].iter().enumerate() {
        std::fs::create_dir_all(photos.join(sub)).unwrap();
        for j in 0..5u32 {
            let seed = 20 + 7 * (i as u32 * 5 + j);
            write_jpeg(
                &photos.join(sub).join(format!("{j}.jpg")),
                &photo(400, 300, seed),
            );
        }
    }
    let original = image::open(photos.join("beach/2.jpg")).unwrap().to_rgb8();
    let small = image::imageops::resize(&original, 200, 150, image::imageops::FilterType::Triangle);
    write_jpeg(&photos.join("city/copy_small.jpg"), &small);
    let idx = tmp.path().join("idx");
    let s = index(&photos, &idx, &[]);
    assert_eq!(s["indexed"], 11);
    (tmp, photos, idx)
}

fn embedding(args: &[&str], path: Option<&Path>) -> Vec<f32> {
    let mut cmd = clipsearch();
    cmd.arg("embed").args(args);
    if let Some(p) = path {
        cmd.arg(p);
    }
    let out = run(cmd.arg("--json").arg("--model").arg(tiny_model()));
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_value(json_lines(&out)[0]["embedding"].clone()).unwrap()
}

#[test]
fn similar_finds_the_file_itself_and_its_resized_copy() {
    let (_tmp, photos, idx) = indexed_collection();
    let out = run(clipsearch()
        .arg("similar")
        .arg(photos.join("beach/2.jpg"))
        .args(["-n", "3", "--json", "--index"])
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    let r = json_lines(&out);
    assert!(
        r[0]["path"].as_str().unwrap().ends_with("beach/2.jpg"),
        "{r:?}"
    );
    assert!(r[0]["score"].as_f64().unwrap() >= 0.999);
    let top2 = paths_of(&r[..2]);
    assert!(
        top2.iter().any(|p| p.ends_with("city/copy_small.jpg")),
        "{r:?}"
    );

    // An image outside the index is embedded on the fly.
    let outside = _tmp.path().join("outside.png");
    image::open(photos.join("city/3.jpg"))
        .unwrap()
        .save(&outside)
        .unwrap();
    let out = run(clipsearch()
        .arg("similar")
        .arg(&outside)
        .args(["-n", "1", "--json", "--index"])
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(json_lines(&out)[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("city/3.jpg"));
}

#[test]
fn dupes_groups_the_resized_copy_with_its_original() {
    let (_tmp, _photos, idx) = indexed_collection();
    // The tiny random model puts unrelated images close together; a strict threshold isolates
    // real copies (resized copy: cosine > 0.999; closest distinct pair here: < 0.99).
    let out = run(clipsearch()
        .args(["dupes", "--threshold", "0.999", "--json", "--index"])
        .arg(&idx));
    assert!(out.status.success(), "{}", stderr(&out));
    let groups = json_lines(&out);
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["size"], 2);
    let members = paths_of(groups[0]["files"].as_array().unwrap());
    assert!(members.iter().any(|p| p.ends_with("beach/2.jpg")));
    assert!(members.iter().any(|p| p.ends_with("city/copy_small.jpg")));
}

#[test]
fn top_under_threshold_json_and_paths_change_the_output() {
    let (_tmp, photos, idx) = indexed_collection();
    let all = search_json(&idx, &["a photo", "-n", "100"]);
    assert_eq!(all.len(), 11);
    let scores: Vec<f64> = all.iter().map(|r| r["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first");

    assert_eq!(search_json(&idx, &["a photo", "-n", "3"]).len(), 3);

    let under = search_json(
        &idx,
        &["a photo", "-n", "100", "--under"]
            .iter()
            .copied()
            .chain([photos.join("beach").to_str().unwrap()])
            .collect::<Vec<_>>(),
    );
    assert_eq!(under.len(), 5);
    assert!(paths_of(&under).iter().all(|p| p.contains("/beach/")));

    let cut = scores[4] as f32;
    let thr = search_json(
        &idx,
        &["a photo", "-n", "100", "--threshold", &cut.to_string()],
    );
    assert!(!thr.is_empty() && thr.len() < 11, "{}", thr.len());
    assert!(
        thr.iter()
            .all(|r| r["score"].as_f64().unwrap() as f32 >= cut),
        "{cut} {thr:?} {scores:?}"
    );

    let out = run(clipsearch()
        .args(["search", "a photo", "-n", "4", "--paths", "--index"])
        .arg(&idx));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 4);
    assert!(text.lines().all(|l| Path::new(l).is_file()), "{text}");
    let out = run(clipsearch()
        .args(["search", "a photo", "-n", "4", "--paths", "-0", "--index"])
        .arg(&idx));
    assert_eq!(out.stdout.iter().filter(|&&b| b == 0).count(), 4);
    assert!(!out.stdout.contains(&b'\n'));

    // The default table: score then path.
    let out = run(clipsearch()
        .args(["search", "a photo", "-n", "2", "--index"])
        .arg(&idx));
    let line = stdout(&out).lines().next().unwrap().to_string();
    let (score, path) = line.split_once("  ").unwrap();
    assert!(
        score.parse::<f32>().is_ok() && Path::new(path).is_file(),
        "{line}"
    );
}

#[test]
fn combined_expression_ranks_like_the_hand_computed_embedding() {
    let (_tmp, photos, idx) = indexed_collection();
    let reference = photos.join("city/1.jpg");
    let expr = [
        "2:a sunny beach",
        "-",
        "people",
        "+",
        reference.to_str().unwrap(),
    ];
    let results = search_json(
        &idx,
        &expr
            .iter()
            .copied()
            .chain(["-n", "100"])
            .collect::<Vec<_>>(),
    );

    // By hand: 2*e(beach) - e(people) + e(image), renormalised, dotted with every file.
    let beach = embedding(&["--text", "a sunny beach"], None);
    let people = embedding(&["--text", "people"], None);
    let img = embedding(&["--image"], Some(&reference));
    let mut q: Vec<f32> = (0..beach.len())
        .map(|i| 2.0 * beach[i] - people[i] + img[i])
        .collect();
    let n = q.iter().map(|x| x * x).sum::<f32>().sqrt();
    q.iter_mut().for_each(|x| *x /= n);
    let mut expected: Vec<(f32, String)> = paths_of(&results)
        .into_iter()
        .map(|p| {
            let e = embedding(&["--image"], Some(Path::new(&p)));
            (q.iter().zip(&e).map(|(a, b)| a * b).sum(), p)
        })
        .collect();
    expected.sort_by(|a, b| b.0.total_cmp(&a.0));
    assert_eq!(results.len(), 11);
    for (r, (score, path)) in results.iter().zip(&expected) {
        assert_eq!(r["path"].as_str().unwrap(), path);
        assert!((r["score"].as_f64().unwrap() as f32 - score).abs() < 1e-4);
    }
}

#[test]
fn missing_empty_and_bad_queries_have_clear_errors_and_exit_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run(clipsearch()
        .args(["search", "cat", "--index"])
        .arg(tmp.path().join("none")));
    assert_eq!(out.status.code(), Some(5));
    assert!(
        stderr(&out).contains("clipsearch index"),
        "{}",
        stderr(&out)
    );

    // An index with only failures is empty.
    let photos = tmp.path().join("p");
    std::fs::create_dir_all(&photos).unwrap();
    std::fs::write(photos.join("bad.jpg"), b"nope").unwrap();
    let idx = tmp.path().join("idx");
    index(&photos, &idx, &[]);
    let out = run(clipsearch().args(["search", "cat", "--index"]).arg(&idx));
    assert_eq!(out.status.code(), Some(5));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));

    let (_t, _photos, idx) = indexed_collection();
    let out = run(clipsearch()
        .args(["search", "cat", "+", "--index"])
        .arg(&idx));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let not_image = tmp.path().join("list.txt");
    std::fs::write(&not_image, "milk").unwrap();
    let out = run(clipsearch()
        .arg("similar")
        .arg(&not_image)
        .arg("--index")
        .arg(&idx));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("list.txt"));
    let long = "word ".repeat(100);
    let out = run(clipsearch().args(["search", &long, "--index"]).arg(&idx));
    assert!(
        out.status.success(),
        "a long query is truncated, not refused"
    );
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));
}
