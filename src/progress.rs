//! Progress for long work. On a terminal: a bar with rate and ETA (indicatif). When
//! stderr is a file or a pipe (a log, CI, a service manager) a bar draws nothing, so a
//! plain line is logged every few seconds instead: nobody should watch a silent
//! process for minutes.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a line is logged when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

pub struct Progress {
    bar: ProgressBar,
    what: String,
    total: u64,
    started: Instant,
    /// `Some(last log time)` when logging lines instead of drawing.
    log: Option<Mutex<Instant>>,
}

impl Progress {
    pub fn new(total: usize, what: &str) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            progress_bar(total, what)
        } else {
            ProgressBar::hidden()
        };
        let now = Instant::now();
        Progress {
            bar,
            what: what.to_string(),
            total: total as u64,
            started: now,
            log: (!terminal).then(|| Mutex::new(now)),
        }
    }

    pub fn inc(&self, n: usize) {
        self.bar.inc(n as u64);
        if let Some(last) = &self.log {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() >= LOG_EVERY {
                *last = Instant::now();
                self.log_line();
            }
        }
    }

    fn log_line(&self) {
        let done = self.bar.position();
        let secs = self.started.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let eta = if rate > 0.0 {
            format!("{:.0}s", (self.total.saturating_sub(done)) as f64 / rate)
        } else {
            "?".into()
        };
        eprintln!(
            "{}: {done}/{} ({:.0}%), {rate:.0}/s, {secs:.0}s elapsed, ETA {eta}",
            self.what,
            self.total,
            100.0 * done as f64 / self.total.max(1) as f64
        );
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
        if self.log.is_some() && self.total > 0 {
            self.log_line();
        }
    }
}

/// A plain indicatif bar with rate and ETA, for loops that log their own lines too
/// (training prints one line per epoch).
pub fn progress_bar(len: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
