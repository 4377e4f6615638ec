//! Replays every fuzz target's corpus (`fuzz/corpus/<target>/`) and every input a fuzzing run
//! found (`fuzz/regressions/<target>/`) through the target's body, so that `cargo test` keeps
//! what fuzzing proved. `scripts/fuzz.sh` runs the targets under libFuzzer.

use std::path::PathBuf;

use bedrock_batch_core::fuzzing::TARGETS;

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of a folder (none when it does not exist), sorted.
fn inputs(dir: &std::path::Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    files
}

#[test]
fn every_target_has_a_corpus_and_a_source_file() {
    for (name, _) in TARGETS {
        assert!(!inputs(&fuzz_dir().join("corpus").join(name)).is_empty(), "fuzz/corpus/{name} is empty");
        assert!(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")).is_file(), "fuzz/fuzz_targets/{name}.rs");
    }
}

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let mut replayed = 0;
    for (name, target) in TARGETS {
        for folder in ["corpus", "regressions"] {
            for file in inputs(&fuzz_dir().join(folder).join(name)) {
                let data = std::fs::read(&file).unwrap();
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails its target", file.display());
                replayed += 1;
            }
        }
    }
    assert!(replayed >= TARGETS.len(), "replayed {replayed} inputs");
}
