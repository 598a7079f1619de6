//! Progress of long runs on stderr: a bar on a terminal, a line every 10 % otherwise (cron,
//! CI logs), nothing on stdout (which `--dry-run` uses for rows).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    what: &'static str,
    total: u64,
    done: AtomicU64,
}

impl Progress {
    fn new(total: Option<u64>, what: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{bar:30} {pos}/{len} {msg} ({per_sec}, eta {eta})"
            } else {
                "{spinner} {pos} {msg} ({per_sec})"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_message(what);
            bar
        });
        Progress {
            bar,
            what,
            total: total.unwrap_or(0),
            done: AtomicU64::new(0),
        }
    }

    pub fn bar(total: u64, what: &'static str) -> Self {
        Self::new(Some(total), what)
    }

    pub fn spinner(what: &'static str) -> Self {
        Self::new(None, what)
    }

    pub fn inc(&self, n: u64) {
        let before = self.done.fetch_add(n, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(n),
            None if self.total >= 10 => {
                let step = self.total / 10;
                if (before + n) / step > before / step {
                    eprintln!("{}/{} {}", before + n, self.total, self.what);
                }
            }
            None => {}
        }
    }

    pub fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish(),
            None => eprintln!("{} {}", self.done.load(Ordering::Relaxed), self.what),
        }
    }
}
