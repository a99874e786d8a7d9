//! A progress line for long commands: done/total, rate and time left, redrawn
//! in place on a terminal and printed every ten seconds otherwise.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress of one long task.
pub struct Bar {
    label: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    terminal: bool,
}

impl Bar {
    pub fn new(label: &'static str, total: u64) -> Bar {
        Bar {
            label,
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    /// Records progress; redraws at most a few times a second.
    pub fn update(&mut self, done: u64) {
        self.done = done;
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        if self.last_draw.is_none_or(|t| t.elapsed() >= every) {
            self.draw(false);
        }
    }

    /// Draws the final state.
    pub fn finish(&mut self) {
        self.draw(true);
    }

    fn draw(&mut self, last: bool) {
        self.last_draw = Some(Instant::now());
        let line = self.line();
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}{}", if last { "\n" } else { "" })
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        #[allow(clippy::cast_precision_loss)]
        let rate = self.done as f64 / secs;
        let width = 30;
        let filled = (self.done.min(self.total) * width as u64)
            .checked_div(self.total)
            .map_or(width, |filled| usize::try_from(filled).unwrap_or(width));
        #[allow(clippy::cast_precision_loss)]
        let eta = if rate > 0.0 && self.total > self.done {
            format!("{:.0}s left", (self.total - self.done) as f64 / rate)
        } else {
            "done".to_owned()
        };
        format!(
            "{} [{}{}] {}/{} {:.0}/s {}",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.done,
            self.total,
            rate,
            eta
        )
    }
}
