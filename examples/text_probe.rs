//! Times the steps of a cold text query's model work: `cargo run --release --example text_probe MODEL_DIR`.
use std::time::Instant;

use clipsearch::model::{ClipModel, ModelFiles, ModelIdentity, Towers};

fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("MODEL_DIR"));
    let t = Instant::now();
    let files = ModelFiles::local(&dir).unwrap();
    let id = ModelIdentity::of(&files).unwrap();
    println!("identity {:?}", t.elapsed());
    let t = Instant::now();
    let tok = clipsearch::tokenizer::ClipTokenizer::from_file(&files.tokenizer(), 77).unwrap();
    println!("tokenizer alone {:?}", t.elapsed());
    drop(tok);
    let t = Instant::now();
    let m = ClipModel::load(&files, Towers::Text).unwrap();
    println!("load text tower (incl. tokenizer) {:?}", t.elapsed());
    let t = Instant::now();
    let v = m.text().unwrap().embed(&["a dog on a beach"]).unwrap();
    println!("embed {:?} dim {} {}", t.elapsed(), v[0].len(), id.dim);
}
