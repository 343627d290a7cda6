//! A fixture test that finds no fixtures is counted, and the count printed
//! after the test binary's results.

use std::process::Command;

/// Set for the test binary that `skipped_fixture_tests_are_counted` runs.
const PROBE: &str = "T2T_TESTING_SKIP_PROBE";

#[test]
fn wants_a_fixture() {
    if std::env::var_os(PROBE).is_none() {
        return;
    }
    assert!(t2t_testing::fixture("t2t", "anything.safetensors").is_none());
}

#[test]
fn skipped_fixture_tests_are_counted() {
    let run = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "wants_a_fixture"])
        .env(PROBE, "1")
        .env_remove("T2T_FIXTURES")
        .env_remove("CI")
        .env_remove("T2T_REQUIRE_FIXTURES")
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("1 passed"), "{stdout}");
    assert!(
        stderr.contains("1 test skipped, T2T_FIXTURES is not set: wants_a_fixture"),
        "{stderr}"
    );
}
