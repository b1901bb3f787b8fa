//! `metrics.jsonl` (one JSON object per line) and human-facing progress output.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;

/// Appends JSON records to the run's `metrics.jsonl`, and their numbers to TensorBoard event
/// files in `tb/` beside it.
pub struct MetricsLog {
    out: Option<BufWriter<File>>,
    tb: Option<crate::tensorboard::EventWriter>,
}

impl MetricsLog {
    /// Opens (appending when `append`, else truncating) `path`.
    pub fn open(path: &Path, append: bool) -> std::io::Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)?;
        let tb = path
            .parent()
            .and_then(|dir| crate::tensorboard::EventWriter::create(&dir.join("tb")).ok());
        Ok(Self {
            out: Some(BufWriter::new(f)),
            tb,
        })
    }

    /// A log that writes nothing (the ranks other than 0 in multi-process training).
    pub fn discard() -> Self {
        Self {
            out: None,
            tb: None,
        }
    }

    /// Writes one record and flushes it.
    pub fn write(&mut self, record: &Value) -> std::io::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
        if let Some(tb) = &mut self.tb {
            let (step, scalars) = crate::tensorboard::record_scalars(record);
            tb.scalars(step, &scalars)?;
        }
        out.flush()
    }
}

/// A progress bar on a terminal, plain log lines otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
}

impl Progress {
    /// Progress over `total` iterations.
    pub fn new(total: u64, start: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_position(start);
            b
        });
        Self { bar, quiet }
    }

    /// Advances to `pos` with a status message; prints a line when not on a terminal and `line`.
    pub fn update(&self, pos: u64, msg: &str, line: bool) {
        match &self.bar {
            Some(b) => {
                b.set_position(pos);
                b.set_message(msg.to_string());
            }
            None if line && !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Prints a message above the bar (or as a line).
    pub fn println(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(msg),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
