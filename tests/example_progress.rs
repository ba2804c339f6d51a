//! `examples/progress.rs` run as `main` runs it: both transfers arrive intact, and every
//! end of each reported its progress more than once.
#![cfg(feature = "postcard")]

#[path = "../examples/progress.rs"]
mod example;

#[test]
fn the_progress_example_moves_a_file_and_an_array_with_reports_on_each_end() {
    let dir = std::env::temp_dir().join(format!("procwire-exprog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = example::run(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let report = report.unwrap();
    println!("{}", report.lines().join("\n"));
    let lines = report.lines();
    let [file_sent, file_received, array_sent, array_received] = report.reports;
    // Sends go out in pieces of at most 1 MiB: one report each at least.
    assert!(file_sent as u64 >= example::FILE_BYTES >> 20, "{report:?}");
    assert!(array_sent >= (example::VALUES * 8) >> 20, "{report:?}");
    assert!(file_received > 1 && array_received > 1, "{report:?}");
    assert_eq!(
        lines[0],
        format!(
            "file: {} bytes sent in {file_sent} reports, received in {file_received}",
            example::FILE_BYTES
        )
    );
    assert!(
        lines[2].starts_with("both checked; 80 MiB in "),
        "{report:?}"
    );
}
