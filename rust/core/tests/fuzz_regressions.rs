//! Replays the in-tree fuzzing corpus (`fuzz/regressions/`): valid seeds, mutated files and
//! every input the fuzzer ever flagged. A panic here is a crash across the Python boundary.

use std::path::Path;

#[test]
fn replay_regression_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        personae_core::fuzzing::fuzz_one(&data);
        n += 1;
    }
    assert!(
        n >= 5,
        "expected a regression corpus, found {n} files in {}",
        dir.display()
    );
}
