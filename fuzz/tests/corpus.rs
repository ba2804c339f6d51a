//! Replays the committed seeds and regression inputs through every harness on stable Rust
//! (no libFuzzer), and checks that the seeds made in Rust are up to date.

use std::path::{Path, PathBuf};

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
}

#[test]
fn every_committed_input_passes_its_harness() {
    for (target, run) in procwire_fuzz::TARGETS {
        let mut count = 0;
        for entry in std::fs::read_dir(seeds_dir(target)).expect("seed directory") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "py") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read seed");
            run(&bytes);
            count += 1;
        }
        assert!(count > 0, "no seeds for {target}");
        println!("{target}: {count} inputs");
    }
}

#[test]
fn committed_seeds_match_what_the_seed_writer_makes() {
    for (target, name, bytes) in procwire_fuzz::seeds::all() {
        let path = seeds_dir(target).join(&name);
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run examples/write_seeds.rs", path.display()));
        assert_eq!(
            committed,
            bytes,
            "{} is stale; run examples/write_seeds.rs",
            path.display()
        );
    }
}

#[test]
fn an_empty_input_passes_every_harness() {
    for (_, run) in procwire_fuzz::TARGETS {
        run(&[]);
    }
}
