//! Writes a random-weight ViT-B/32-shaped checkpoint: `cargo run --release --example write_vitb32 DIR`.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("DIR"));
    let tok = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-clip/tokenizer.json");
    clipsearch::model::synthetic::write_random_checkpoint(
        &dir,
        &clipsearch::model::ClipConfig::vit_b32(),
        &tok,
    )
    .unwrap();
}
