//! Writes the seed corpus into `fuzz/seeds/<target>/`.
//!
//! Run: `cargo run --manifest-path fuzz/Cargo.toml --example write_seeds`

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (target, name, bytes) in procwire_fuzz::seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(&name), bytes)?;
        println!("{target}/{name}");
    }
    Ok(())
}
