//! Every file of the fuzz corpus (`fuzz/corpus/<target>/`), the
//! reproductions of past bugs included, through its target's entry
//! function: the corpus is checked without cargo-fuzz.

use std::path::Path;

#[test]
fn every_corpus_file_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut total = 0;
    for (target, run) in gatehouse_fuzz_entries::TARGETS {
        let dir = root.join(target);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for {target}");
        for file in files {
            let data = match std::fs::read(&file) {
                Ok(d) => d,
                Err(e) => panic!("{}: {e}", file.display()),
            };
            let outcome = std::panic::catch_unwind(|| run(&data));
            assert!(outcome.is_ok(), "{target}: {} fails", file.display());
            total += 1;
        }
    }
    assert!(total > 0);
}
