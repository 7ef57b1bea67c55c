//! A synthetic captioned world of coloured shapes: what the bundled demo model learns, and
//! what tests use to check real semantics (random weights cannot).
//!
//! Each image shows one or two shapes (6 kinds) in one of 8 colours, small or large, at a
//! position, on a plain background, with several captions ("a small red circle on the left",
//! "two blue squares", "a photo of a star"). Six colour-shape combinations, one per shape and
//! colour, are [`HELD_OUT`]: training sets never contain them, so a model that names them was
//! never shown them together: the zero-shot generalisation the CLIP paper argues for.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::{Error, Result};

pub const SHAPES: [&str; 6] = ["circle", "square", "triangle", "star", "cross", "heart"];

pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [215, 35, 35]),
    ("orange", [245, 135, 20]),
    ("yellow", [240, 215, 30]),
    ("green", [40, 160, 60]),
    ("blue", [40, 80, 215]),
    ("purple", [125, 45, 175]),
    ("pink", [245, 140, 195]),
    ("brown", [125, 80, 40]),
];

pub const BACKGROUNDS: [(&str, [u8; 3]); 3] = [
    ("white", [242, 242, 242]),
    ("grey", [128, 128, 128]),
    ("black", [22, 22, 22]),
];

/// Colourless objects (black or white, whichever stands out from the background) that training
/// sets mix in with shape-only captions. They make shape worth learning from the first step:
/// without them a model first learns colour alone, and the text of each shape picks up the
/// absence of its held-out colour ("green things are never circles"), which later misnames
/// exactly the combinations held out. They are never in test sets or among [`COLOURS`].
pub const ACHROMATIC: [(&str, [u8; 3]); 2] = [("white", [235, 235, 235]), ("black", [30, 30, 30])];

/// The share of training scenes drawn in [`ACHROMATIC`] colours.
pub const ACHROMATIC_SHARE: f64 = 0.25;

pub fn is_achromatic(colour: &str) -> bool {
    ACHROMATIC.iter().any(|(n, _)| *n == colour)
}

/// (shape, colour) pairs never shown in training sets.
pub const HELD_OUT: [(&str, &str); 6] = [
    ("circle", "green"),
    ("square", "red"),
    ("triangle", "blue"),
    ("star", "purple"),
    ("cross", "yellow"),
    ("heart", "orange"),
];

pub fn is_held_out(shape: &str, colour: &str) -> bool {
    HELD_OUT.contains(&(shape, colour))
}

/// Which combinations a generated set may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// No held-out combination anywhere.
    Train,
    /// Every combination; held-out ones are drawn as often as the others.
    Test,
}

/// One shape in a scene.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Object {
    pub shape: String,
    pub colour: String,
    /// `small` or `large`.
    pub size: String,
    /// `left`, `right`, `top`, `bottom` or `middle`.
    pub position: String,
    /// Centre and radius as fractions of the image side; rotation in radians.
    pub x: f32,
    pub y: f32,
    pub radius: f32,
    pub rotation: f32,
}

impl Object {
    /// Where it is, as captions say it ("on the left", "at the top", "in the middle").
    fn place(&self) -> String {
        match self.position.as_str() {
            "middle" => "in the middle".to_string(),
            p @ ("top" | "bottom") => format!("at the {p}"),
            p => format!("on the {p}"),
        }
    }
}

/// A generated image's content: what the captions and the evaluation labels say.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scene {
    pub objects: Vec<Object>,
    pub background: String,
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn combo(rng: &mut ChaCha8Rng, split: Split, background: &str) -> (String, String) {
    loop {
        let shape = *pick(rng, &SHAPES);
        let colour = pick(rng, &COLOURS).0;
        // Black shapes do not exist, but brown on black is hard to see: keep contrast.
        let low_contrast = background == "black" && colour == "brown";
        if low_contrast || (split == Split::Train && is_held_out(shape, colour)) {
            continue;
        }
        return (shape.to_string(), colour.to_string());
    }
}

impl Scene {
    /// A random scene: two thirds show one shape, one third two.
    pub fn random(rng: &mut ChaCha8Rng, split: Split) -> Scene {
        let background = pick(rng, &BACKGROUNDS).0.to_string();
        let jitter = |rng: &mut ChaCha8Rng| rng.random_range(-0.04f32..0.04);
        let rotation = |rng: &mut ChaCha8Rng| rng.random_range(-0.2f32..0.2);
        // Only training sets draw this, so test sets stay what they were for a given seed.
        let achromatic = split == Split::Train && rng.random_bool(ACHROMATIC_SHARE);
        let mut objects = if rng.random_bool(2.0 / 3.0) {
            let (shape, colour) = combo(rng, split, &background);
            let large = rng.random_bool(0.4);
            let (size, radius, position) = if large {
                ("large", rng.random_range(0.26f32..0.32), "middle")
            } else {
                let pos = *pick(rng, &["left", "right", "top", "bottom", "middle"]);
                ("small", rng.random_range(0.14f32..0.18), pos)
            };
            let (x, y) = match position {
                "left" => (0.28, 0.5),
                "right" => (0.72, 0.5),
                "top" => (0.5, 0.28),
                "bottom" => (0.5, 0.72),
                _ => (0.5, 0.5),
            };
            vec![Object {
                shape,
                colour,
                size: size.into(),
                position: position.into(),
                x: x + jitter(rng),
                y: y + jitter(rng),
                radius,
                rotation: rotation(rng),
            }]
        } else {
            let (s1, c1) = combo(rng, split, &background);
            // Half of the pairs repeat the first object ("two blue squares").
            let (s2, c2) = if rng.random_bool(0.5) {
                (s1.clone(), c1.clone())
            } else {
                combo(rng, split, &background)
            };
            [(s1, c1, "left", 0.28f32), (s2, c2, "right", 0.72)]
                .into_iter()
                .map(|(shape, colour, position, x)| Object {
                    shape,
                    colour,
                    size: "small".into(),
                    position: position.into(),
                    x: x + jitter(rng),
                    y: 0.5 + 2.0 * jitter(rng),
                    radius: rng.random_range(0.15f32..0.19),
                    rotation: rotation(rng),
                })
                .collect()
        };
        if achromatic {
            let contrast = match background.as_str() {
                "white" => "black",
                "black" => "white",
                _ => pick(rng, &ACHROMATIC).0,
            };
            for o in &mut objects {
                o.colour = contrast.into();
            }
        }
        Scene {
            objects,
            background,
        }
    }

    /// Several captions of the scene, the most specific first.
    pub fn captions(&self) -> Vec<String> {
        let bg = &self.background;
        if self.objects.iter().any(|o| is_achromatic(&o.colour)) {
            return self.shape_captions();
        }
        match self.objects.as_slice() {
            [o] => {
                let (c, s) = (&o.colour, &o.shape);
                let place = o.place();
                let a = article(c);
                vec![
                    format!("a {} {c} {s} {place}", o.size),
                    format!("{a} {c} {s}"),
                    format!("a photo of {a} {c} {s}"),
                    format!("{a} {c} {s} on a {bg} background"),
                    format!("a {} {s}", o.size),
                    format!("a {s}"),
                    format!("{a} {c} shape"),
                ]
            }
            [a, b] if a.shape == b.shape && a.colour == b.colour => {
                let plural = plural(&a.shape);
                vec![
                    format!("two {} {plural}", a.colour),
                    format!("two {} {plural} on a {bg} background", a.colour),
                    format!("a photo of two {} {plural}", a.colour),
                    format!("two {plural}"),
                    format!("two {} shapes", a.colour),
                ]
            }
            [a, b] => {
                let (ca, sa, cb, sb) = (&a.colour, &a.shape, &b.colour, &b.shape);
                let (aa, ab) = (article(ca), article(cb));
                vec![
                    format!("{aa} {ca} {sa} and {ab} {cb} {sb}"),
                    format!("{aa} {ca} {sa} to the left of {ab} {cb} {sb}"),
                    format!("{ab} {cb} {sb} to the right of {aa} {ca} {sa}"),
                    format!("{ab} {cb} {sb} and {aa} {ca} {sa}"),
                    format!("{aa} {ca} {sa} and {ab} {cb} {sb} on a {bg} background"),
                ]
            }
            _ => vec![],
        }
    }

    /// Captions of an achromatic scene: shapes, sizes and places, never a colour.
    fn shape_captions(&self) -> Vec<String> {
        let bg = &self.background;
        match self.objects.as_slice() {
            [o] => {
                let s = &o.shape;
                let place = o.place();
                vec![
                    format!("a {} {s} {place}", o.size),
                    format!("a {s}"),
                    format!("a photo of a {s}"),
                    format!("a {s} on a {bg} background"),
                    format!("a {} {s}", o.size),
                ]
            }
            [a, b] if a.shape == b.shape => {
                let plural = plural(&a.shape);
                vec![
                    format!("two {plural}"),
                    format!("two {plural} on a {bg} background"),
                    format!("a photo of two {plural}"),
                ]
            }
            [a, b] => {
                let (sa, sb) = (&a.shape, &b.shape);
                vec![
                    format!("a {sa} and a {sb}"),
                    format!("a {sa} to the left of a {sb}"),
                    format!("a {sb} to the right of a {sa}"),
                    format!("a {sb} and a {sa}"),
                ]
            }
            _ => vec![],
        }
    }

    /// Renders the scene as a `size` x `size` RGB image.
    pub fn render(&self, size: u32, rng: &mut ChaCha8Rng) -> image::RgbImage {
        let bg = colour_of(&BACKGROUNDS, &self.background);
        let shade = rng.random_range(-8i16..=8);
        let mut img = image::RgbImage::from_fn(size, size, |_, _| {
            let noise = rng.random_range(-3i16..=3);
            image::Rgb(bg.map(|v| (v as i16 + shade + noise).clamp(0, 255) as u8))
        });
        for o in &self.objects {
            let base = if is_achromatic(&o.colour) {
                colour_of(&ACHROMATIC, &o.colour)
            } else {
                colour_of(&COLOURS, &o.colour)
            };
            let tint: [i16; 3] = std::array::from_fn(|_| rng.random_range(-12i16..=12));
            let fill: [f32; 3] =
                std::array::from_fn(|c| (base[c] as i16 + tint[c]).clamp(0, 255) as f32);
            draw(&mut img, o, fill);
        }
        img
    }
}

/// "a" or "an" before `word` (only "orange" needs "an" in this world).
pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

fn plural(shape: &str) -> String {
    match shape {
        "cross" => "crosses".into(),
        s => format!("{s}s"),
    }
}

fn colour_of(table: &[(&str, [u8; 3])], name: &str) -> [u8; 3] {
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .unwrap_or([128, 128, 128])
}

/// The outline of a shape of unit radius centred on the origin, y pointing down.
fn outline(shape: &str) -> Vec<(f32, f32)> {
    use std::f32::consts::{FRAC_PI_2, PI};
    let ring = |n: usize, r: &dyn Fn(usize) -> f32| -> Vec<(f32, f32)> {
        (0..n)
            .map(|i| {
                let a = -FRAC_PI_2 + 2.0 * PI * i as f32 / n as f32;
                (r(i) * a.cos(), r(i) * a.sin())
            })
            .collect()
    };
    match shape {
        "square" => vec![(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)],
        "triangle" => ring(3, &|_| 1.1),
        "star" => ring(10, &|i| if i % 2 == 0 { 1.1 } else { 0.45 }),
        "cross" => {
            let (a, b) = (1.0, 0.33);
            vec![
                (-b, -a),
                (b, -a),
                (b, -b),
                (a, -b),
                (a, b),
                (b, b),
                (b, a),
                (-b, a),
                (-b, b),
                (-a, b),
                (-a, -b),
                (-b, -b),
            ]
        }
        "heart" => (0..48)
            .map(|i| {
                let t = 2.0 * PI * i as f32 / 48.0;
                let x = 16.0 * t.sin().powi(3);
                let y = 13.0 * t.cos()
                    - 5.0 * (2.0 * t).cos()
                    - 2.0 * (3.0 * t).cos()
                    - (4.0 * t).cos();
                (x / 16.0, -(y + 2.5) / 16.0)
            })
            .collect(),
        _ => ring(64, &|_| 0.95), // circle
    }
}

/// Signed distance from `p` to a polygon (negative inside).
fn signed_distance(poly: &[(f32, f32)], p: (f32, f32)) -> f32 {
    let mut d = f32::MAX;
    let mut inside = false;
    for i in 0..poly.len() {
        let a = poly[i];
        let b = poly[(i + 1) % poly.len()];
        let (ex, ey) = (b.0 - a.0, b.1 - a.1);
        let (wx, wy) = (p.0 - a.0, p.1 - a.1);
        let t = ((wx * ex + wy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0);
        let (dx, dy) = (wx - ex * t, wy - ey * t);
        d = d.min(dx * dx + dy * dy);
        if (a.1 > p.1) != (b.1 > p.1) && p.0 < a.0 + (p.1 - a.1) / (b.1 - a.1) * ex {
            inside = !inside;
        }
    }
    if inside {
        -d.sqrt()
    } else {
        d.sqrt()
    }
}

/// Draws one object with anti-aliased edges (coverage from the signed distance).
fn draw(img: &mut image::RgbImage, o: &Object, fill: [f32; 3]) {
    let side = img.width() as f32;
    let r = o.radius * side;
    let (cx, cy) = (o.x * side, o.y * side);
    let (sin, cos) = o.rotation.sin_cos();
    let poly: Vec<(f32, f32)> = outline(&o.shape)
        .into_iter()
        .map(|(x, y)| (cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)))
        .collect();
    let reach = 1.2 * r + 2.0;
    let lo = |c: f32| (c - reach).floor().max(0.0) as u32;
    let last = img.width() - 1;
    let hi = |c: f32| ((c + reach).ceil() as u32).min(last);
    for y in lo(cy)..=hi(cy) {
        for x in lo(cx)..=hi(cx) {
            let d = signed_distance(&poly, (x as f32 + 0.5, y as f32 + 0.5));
            let cover = (0.5 - d).clamp(0.0, 1.0);
            if cover > 0.0 {
                let px = img.get_pixel_mut(x, y);
                for (v, f) in px.0.iter_mut().zip(fill) {
                    *v = (*v as f32 * (1.0 - cover) + f * cover).round() as u8;
                }
            }
        }
    }
}

/// A generated image on disk with its scene.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Generated {
    pub path: PathBuf,
    pub scene: Scene,
}

/// Writes `count` scenes as `NNNNN.png` with a sidecar `NNNNN.txt` of captions (the training
/// format of [`crate::data`]) plus `scenes.jsonl` with the labels, into `dir`. The same seed
/// gives the same files.
pub fn generate(
    dir: &Path,
    count: usize,
    seed: u64,
    split: Split,
    size: u32,
) -> Result<Vec<Generated>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let generated: Vec<Generated> = (0..count)
        .into_par_iter()
        .map(|i| {
            // One generator per image: the output does not depend on thread scheduling.
            let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003) ^ i as u64);
            let scene = Scene::random(&mut rng, split);
            let path = dir.join(format!("{i:05}.png"));
            scene
                .render(size, &mut rng)
                .save(&path)
                .map_err(|e| Error::Data(format!("{}: {e}", path.display())))?;
            let captions = scene.captions().join("\n") + "\n";
            let txt = path.with_extension("txt");
            std::fs::write(&txt, captions).map_err(|e| Error::io(&txt, e))?;
            Ok(Generated { path, scene })
        })
        .collect::<Result<_>>()?;
    let manifest = dir.join("scenes.jsonl");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&manifest).map_err(|e| Error::io(&manifest, e))?,
    );
    for g in &generated {
        let line = serde_json::json!({
            "image": g.path.file_name().map(|n| n.to_string_lossy().into_owned()),
            "scene": g.scene,
        });
        writeln!(f, "{line}").map_err(|e| Error::io(&manifest, e))?;
    }
    f.flush().map_err(|e| Error::io(&manifest, e))?;
    Ok(generated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_split_never_shows_held_out_combinations() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3000 {
            for o in Scene::random(&mut rng, Split::Train).objects {
                assert!(!is_held_out(&o.shape, &o.colour), "{o:?}");
                seen.insert((o.shape, o.colour));
            }
        }
        let coloured = seen.iter().filter(|(_, c)| !is_achromatic(c)).count();
        assert_eq!(coloured, SHAPES.len() * COLOURS.len() - HELD_OUT.len());
        // Colourless training scenes exist, are captioned without colour words, and are
        // drawn in a colour that stands out from the background.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let scenes: Vec<Scene> = (0..2000)
            .map(|_| Scene::random(&mut rng, Split::Train))
            .collect();
        let plain: Vec<&Scene> = scenes
            .iter()
            .filter(|s| s.objects.iter().all(|o| is_achromatic(&o.colour)))
            .collect();
        assert!((400..600).contains(&plain.len()), "{}", plain.len());
        for s in plain {
            assert_ne!(s.objects[0].colour, s.background, "{s:?}");
            for c in s.captions() {
                let c = c.replace(&format!("on a {} background", s.background), "");
                assert!(
                    COLOURS
                        .iter()
                        .chain(&ACHROMATIC)
                        .all(|(name, _)| !c.split(' ').any(|w| w == *name)),
                    "{c:?}"
                );
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let held = (0..3000)
            .flat_map(|_| Scene::random(&mut rng, Split::Test).objects)
            .inspect(|o| assert!(!is_achromatic(&o.colour), "{o:?}"))
            .filter(|o| is_held_out(&o.shape, &o.colour))
            .count();
        assert!(held > 100, "{held}");
    }

    #[test]
    fn shapes_are_drawn_where_they_are_said_to_be() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for shape in SHAPES {
            let scene = Scene {
                objects: vec![Object {
                    shape: shape.into(),
                    colour: "red".into(),
                    size: "large".into(),
                    position: "left".into(),
                    x: 0.3,
                    y: 0.5,
                    radius: 0.2,
                    rotation: 0.0,
                }],
                background: "white".into(),
            };
            let img = scene.render(100, &mut rng);
            let red = |x, y| {
                let p: &image::Rgb<u8> = img.get_pixel(x, y);
                p.0[0] > 150 && p.0[1] < 100
            };
            assert!(red(30, 50), "{shape}: centre is filled");
            assert!(
                !red(80, 50) && !red(30, 5),
                "{shape}: far away is background"
            );
        }
        let captions = Scene::random(&mut rng, Split::Test).captions();
        assert!(captions.len() >= 5, "{captions:?}");
    }
}
