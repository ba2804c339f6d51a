//! Run: cargo run --release --example progress
//!
//! Progress bars (indicatif) for the two long transfers procwire does: a file sent with
//! `send_file_with_progress` and received with `recv_file_with_progress`, and a large
//! array sent with `send_bytes_with_progress` and received straight into its buffer with
//! `recv_bytes_into_with_progress`. The receiver runs on its own thread here to keep the
//! example short; across processes the calls are the same.
//!
//! The bars draw on standard error when it is a terminal, and stay hidden otherwise; the
//! lines on standard output say what was moved either way.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

/// The size of the file sent, in bytes.
pub(crate) const FILE_BYTES: u64 = 48 << 20;
/// The number of `f64` values in the array sent.
pub(crate) const VALUES: usize = 4 << 20;

/// What one run saw.
#[derive(Debug)]
pub(crate) struct Report {
    /// How many progress reports each transfer made: file sent, file received, array
    /// sent, array received.
    pub(crate) reports: [usize; 4],
    /// The time both transfers took.
    pub(crate) elapsed: std::time::Duration,
}

impl Report {
    /// The lines `main` prints.
    pub(crate) fn lines(&self) -> Vec<String> {
        let [file_sent, file_received, array_sent, array_received] = self.reports;
        vec![
            format!("file: {FILE_BYTES} bytes sent in {file_sent} reports, received in {file_received}"),
            format!(
                "array: {VALUES} f64 values sent in {array_sent} reports, received in {array_received}"
            ),
            format!(
                "both checked; {:.0} MiB in {:.1} ms",
                (FILE_BYTES + (VALUES * 8) as u64) as f64 / f64::from(1 << 20),
                self.elapsed.as_secs_f64() * 1e3
            ),
        ]
    }
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg:>16} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Writes a file of [`FILE_BYTES`] bytes into `dir`.
fn make_file(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("outgoing.bin");
    let mut file = std::io::BufWriter::new(File::create(&path)?);
    let block: Vec<u8> = (0..=255u8).cycle().take(1 << 16).collect();
    for _ in 0..FILE_BYTES / block.len() as u64 {
        file.write_all(&block)?;
    }
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(path)
}

/// Sends a file and an array through a duplex connection to a receiving thread, with a
/// progress bar on each end of each transfer; files go under `dir`.
pub(crate) fn run(dir: &Path) -> Result<Report, Box<dyn std::error::Error>> {
    let source = make_file(dir)?;
    let dest = dir.join("incoming.bin");
    let (here, there) = procwire::duplex::<(), ()>()?;

    let receiver = {
        let dest = dest.clone();
        std::thread::spawn(move || -> procwire::Result<(usize, usize, Vec<f64>)> {
            let mut file_reports = 0;
            let recv_bar = bar(FILE_BYTES, "file received");
            there.recv_file_with_progress(&dest, FILE_BYTES, |got, _| {
                file_reports += 1;
                recv_bar.set_position(got);
            })?;
            recv_bar.finish();

            let mut values = vec![0f64; VALUES];
            let mut array_reports = 0;
            let recv_bar = bar((VALUES * 8) as u64, "array received");
            there.recv_bytes_into_with_progress(&mut values, |got, _| {
                array_reports += 1;
                recv_bar.set_position(got);
            })?;
            recv_bar.finish();
            Ok((file_reports, array_reports, values))
        })
    };

    let t = Instant::now();
    let send_bar = bar(FILE_BYTES, "file sent");
    let mut file_sent = 0;
    let len = here.send_file_with_progress(&File::open(&source)?, |sent, _| {
        file_sent += 1;
        send_bar.set_position(sent);
    })?;
    send_bar.finish();
    if len != FILE_BYTES {
        return Err(format!("sent {len} bytes of a {FILE_BYTES}-byte file").into());
    }

    let values: Vec<f64> = (0..VALUES).map(|i| i as f64 / 3.0).collect();
    let send_bar = bar((VALUES * 8) as u64, "array sent");
    let mut array_sent = 0;
    here.send_bytes_with_progress(&values, |sent, _| {
        array_sent += 1;
        send_bar.set_position(sent);
    })?;
    send_bar.finish();

    let (file_received, array_received, got) = receiver
        .join()
        .map_err(|_| "the receiving thread panicked")??;
    let elapsed = t.elapsed();
    if std::fs::read(&dest)? != std::fs::read(&source)? {
        return Err("the received file differs from the one sent".into());
    }
    if got != values {
        return Err("the received array differs from the one sent".into());
    }
    Ok(Report {
        reports: [file_sent, file_received, array_sent, array_received],
        elapsed,
    })
}

#[allow(dead_code)] // the test includes this file as a module and calls `run`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("procwire-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let report = run(&dir);
    std::fs::remove_dir_all(&dir)?;
    for line in report?.lines() {
        println!("{line}");
    }
    Ok(())
}
