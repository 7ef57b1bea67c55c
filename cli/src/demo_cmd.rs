//! `clipsearch demo`: the whole pipeline offline, with the bundled model, in under a minute.
//! Generates a collection of the synthetic shapes world (fresh images, including colour-shape
//! combinations the model never saw in training), indexes it, and answers a few queries,
//! marking each result right or wrong from the generator's labels.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use clipsearch::model::{bundled, resolve, ClipModel, ModelIdentity, Towers};
use clipsearch::store::Store;
use clipsearch_query::classify::{model_templates, Classifier};
use clipsearch_query::{SearchOptions, Target};
use clipsearch_train::world::{self, Scene, Split};

use crate::exit;

/// Arguments of `clipsearch demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// Where the demo collection and its index go (default: $XDG_DATA_HOME/clipsearch/demo).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Images in the demo collection.
    #[arg(long, default_value_t = 300)]
    pub count: usize,
}

/// The queries shown: (text, colour, shape); the held-out ones test zero-shot composition.
const QUERIES: &[(&str, &str, &str)] = &[
    ("a red circle", "red", "circle"),
    ("a photo of a yellow star", "yellow", "star"),
    ("a green circle", "green", "circle"),
    ("a purple star", "purple", "star"),
    ("a blue triangle", "blue", "triangle"),
];

fn matches(scene: &Scene, colour: &str, shape: &str) -> bool {
    scene
        .objects
        .iter()
        .any(|o| o.colour == colour && o.shape == shape)
}

fn describe(scene: &Scene) -> String {
    scene.captions().into_iter().next().unwrap_or_default()
}

pub fn run(args: DemoArgs) -> Result<i32> {
    let dir = match args.dir {
        Some(d) => d,
        None => dirs::data_dir()
            .context("no home directory: pass --dir DIR")?
            .join("clipsearch")
            .join("demo"),
    };
    let photos = dir.join("shapes");
    let started = std::time::Instant::now();
    let scenes = load_or_generate(&photos, args.count)?;
    println!(
        "1. A collection of {} synthetic images in {}",
        scenes.len(),
        photos.display()
    );

    let files = resolve(bundled::DEMO)?;
    let identity = ModelIdentity::of(&files)?;
    let index_dir = dir.join("index");
    let store = Store::open(&index_dir, Some(&identity)).or_else(|e| {
        // A demo index from an older bundled model: start it over.
        tracing::info!("rebuilding the demo index: {e}");
        let s = Store::open(&index_dir, None)?;
        s.clear(&identity)?;
        Ok::<_, clipsearch::Error>(s)
    })?;
    let opts = clipsearch_indexer::Options::new(vec![photos.clone()]);
    let bar = crate::progress::bar(0, "indexing");
    let summary = clipsearch_indexer::index(&store, &files, &opts, &bar, &AtomicBool::new(false))?;
    bar.finish_and_clear();
    println!(
        "2. Indexed with the bundled demo model: {} new, {} unchanged, {:.1} s",
        summary.indexed, summary.unchanged, summary.seconds
    );

    drop(store);
    let mut searcher = Target::Local(index_dir.clone()).searcher(None)?;
    let by_path: HashMap<PathBuf, &Scene> = scenes.iter().map(|(p, s)| (p.clone(), s)).collect();
    println!("3. Text queries (top 3; ✓ = the image has that shape in that colour; * = never seen in training):");
    for (text, colour, shape) in QUERIES {
        let query = searcher.embed_text(text)?;
        let hits = searcher.search(
            &query,
            &SearchOptions {
                top: 3,
                ..Default::default()
            },
        )?;
        let held = if world::is_held_out(shape, colour) {
            " *"
        } else {
            ""
        };
        println!("   \"{text}\"{held}");
        for m in hits {
            let scene = by_path.get(&m.path.canonicalize().unwrap_or(m.path.clone()));
            let mark = scene.map(|s| {
                if matches(s, colour, shape) {
                    "✓"
                } else {
                    "✗"
                }
            });
            println!(
                "     {} {:.3}  {}  ({})",
                mark.unwrap_or("?"),
                m.score.unwrap_or(0.0),
                m.path.display(),
                scene.map(|s| describe(s)).unwrap_or_default()
            );
        }
    }

    let (probe_path, probe) = &scenes[0];
    let query = searcher.embed_image(probe_path)?;
    let hits = searcher.search(
        &query,
        &SearchOptions {
            top: 4,
            ..Default::default()
        },
    )?;
    println!(
        "4. Reverse image lookup: images like {} ({})",
        probe_path.display(),
        describe(probe)
    );
    for m in hits.iter().filter(|m| &m.path != probe_path).take(3) {
        let scene = by_path.get(&m.path);
        println!(
            "     {:.3}  {}  ({})",
            m.score.unwrap_or(0.0),
            m.path.display(),
            scene.map(|s| describe(s)).unwrap_or_default()
        );
    }

    let model = ClipModel::load(&files, Towers::Both)?;
    let templates = model_templates(&files).unwrap_or_else(|| vec!["a {}".into()]);
    let shapes: Vec<String> = world::SHAPES.iter().map(|s| s.to_string()).collect();
    let colours: Vec<String> = world::COLOURS.iter().map(|c| c.0.to_string()).collect();
    let by_shape = Classifier::new(&model, &shapes, &templates)?;
    let by_colour = Classifier::new(&model, &colours, &templates)?;
    println!("5. Zero-shot classification (labels: the 6 shapes, the 8 colours):");
    for (path, scene) in scenes.iter().filter(|(_, s)| s.objects.len() == 1).take(4) {
        let e = model.image()?.embed_file(path)?;
        let (s, c) = (&by_shape.classify(&e)[0], &by_colour.classify(&e)[0]);
        println!(
            "     {}: {} {:.0}%, {} {:.0}%  (truth: {} {})",
            path.file_name().unwrap_or_default().to_string_lossy(),
            s.label,
            100.0 * s.prob,
            c.label,
            100.0 * c.prob,
            scene.objects[0].colour,
            scene.objects[0].shape
        );
    }
    println!(
        "Done in {:.1} s. Try your own: clipsearch search --index {} \"two pink hearts\"",
        started.elapsed().as_secs_f64(),
        index_dir.display()
    );
    Ok(exit::OK)
}

/// The demo collection, generated once (seeded: the same images every time).
fn load_or_generate(photos: &Path, count: usize) -> Result<Vec<(PathBuf, Scene)>> {
    let manifest = photos.join("scenes.jsonl");
    let existing = std::fs::read_to_string(&manifest).ok().map(|text| {
        text.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                let scene: Scene = serde_json::from_value(v["scene"].clone()).ok()?;
                Some((photos.join(v["image"].as_str()?), scene))
            })
            .collect::<Vec<_>>()
    });
    let list = match existing {
        Some(list) if list.len() == count && list.iter().all(|(p, _)| p.is_file()) => list,
        _ => world::generate(photos, count, 2024, Split::Test, 128)?
            .into_iter()
            .map(|g| (g.path, g.scene))
            .collect(),
    };
    // Paths as the index stores them (canonical), for matching results to labels.
    Ok(list
        .into_iter()
        .map(|(p, s)| (p.canonicalize().unwrap_or(p), s))
        .collect())
}
