//! The benches' clock: CPU time of the benchmarking thread by default, so "events/s" means
//! events per second of one core even on a machine shared with other work (wall time there
//! counts the time the thread waited for a core). `BENCH_CLOCK=wall` selects criterion's
//! usual wall-clock time.

use std::time::Duration;

use criterion::Criterion;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchClock {
    ThreadCpu,
    Wall,
}

impl BenchClock {
    pub fn from_env() -> Self {
        match std::env::var("BENCH_CLOCK").as_deref() {
            Ok("wall") => BenchClock::Wall,
            _ => BenchClock::ThreadCpu,
        }
    }

    fn now(self) -> Duration {
        let clock = match self {
            BenchClock::ThreadCpu => libc::CLOCK_THREAD_CPUTIME_ID,
            BenchClock::Wall => libc::CLOCK_MONOTONIC,
        };
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; both clock ids exist on Linux.
        let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime failed");
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Criterion configured with [`BenchClock::from_env`].
pub fn criterion() -> Criterion<BenchClock> {
    let clock = BenchClock::from_env();
    eprintln!("clock: {clock:?} (BENCH_CLOCK=wall for wall time)");
    Criterion::default().with_measurement(clock)
}

static DURATIONS: WallTime = WallTime;

impl Measurement for BenchClock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        self.now()
    }
    fn end(&self, start: Duration) -> Duration {
        self.now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds either way, so criterion's duration formatting applies.
        DURATIONS.formatter()
    }
}
