//! Spinning before a blocking receive, for connections whose peer answers within
//! microseconds on another core (opt-in; see `Receiver::set_spin`).
//!
//! A blocking `recv(2)` that finds nothing puts the thread to sleep, and waking it when the
//! peer's bytes arrive costs a cross-core wake-up (tens of microseconds on a VM). With a
//! spin set, a blocking receive that has nothing buffered first retries a non-blocking
//! read until bytes arrive or its budget is spent, and only then blocks. Between tries it
//! yields the core (`sched_yield`): with nothing else to run that returns at once, and
//! when the peer shares the core it runs the peer right away, so a spin never holds up the
//! answer it waits for.
//!
//! The budget adapts: it starts at the maximum the caller set, doubles back towards it
//! after a spin that found bytes, and halves after two spins in a row that found none; once
//! below a microsecond it drops to zero (receives block at once, costing nothing extra),
//! and every [`REPROBE`]th blocking receive tries a quarter of the maximum again, so a
//! peer that becomes fast again is noticed. The CPU cost is at most the budget per receive,
//! spent only while nothing has arrived.

use std::time::{Duration, Instant};

use super::Reader;

/// How many blocking receives with a zero budget pass before one spins again.
pub(super) const REPROBE: u32 = 64;

/// Below this a budget is not worth a spin: it becomes zero.
const FLOOR: Duration = Duration::from_micros(1);

/// A receiver's spin settings and its adapted budget.
#[derive(Debug, Clone)]
pub(crate) struct Spin {
    max: Duration,
    budget: Duration,
    misses: u32,
    idle: u32,
}

impl Spin {
    pub(crate) fn new(max: Duration) -> Spin {
        Spin {
            max,
            budget: max,
            misses: 0,
            idle: 0,
        }
    }

    /// The longest a receive spins.
    pub(crate) fn max(&self) -> Duration {
        self.max
    }

    fn hit(&mut self) {
        self.misses = 0;
        self.budget = (self.budget * 2).max(FLOOR).min(self.max);
    }

    fn miss(&mut self) {
        self.misses += 1;
        if self.misses >= 2 {
            self.misses = 0;
            self.budget /= 2;
            if self.budget < FLOOR {
                self.budget = Duration::ZERO;
            }
        }
    }
}

impl Reader {
    /// Sets (or with `None` removes) the spin of blocking receives.
    pub(crate) fn set_spin(&mut self, max: Option<Duration>) {
        self.spin = max.filter(|m| !m.is_zero()).map(Spin::new);
    }

    /// The longest a blocking receive spins, if it does.
    pub(crate) fn spin(&self) -> Option<Duration> {
        self.spin.as_ref().map(Spin::max)
    }

    /// Before a blocking receive: with a spin set and nothing buffered, retries
    /// non-blocking reads until bytes arrive (or the stream ends, or fails: kept for the
    /// receive to report) or the budget is spent.
    #[inline]
    pub(super) fn spin_before_block(&mut self) {
        if self.spin.is_some() && self.dec.buffered_len() == 0 && self.failed.is_none() {
            self.spin_now();
        }
    }

    #[cold]
    fn spin_now(&mut self) {
        let Some(mut spin) = self.spin.take() else {
            return;
        };
        if spin.budget.is_zero() {
            spin.idle += 1;
            if spin.idle >= REPROBE {
                spin.idle = 0;
                spin.budget = (spin.max / 4).max(FLOOR);
            }
            self.spin = Some(spin);
            return;
        }
        let start = Instant::now();
        loop {
            match self.read_nonblocking() {
                Ok(Some(_)) => {
                    spin.hit();
                    break;
                }
                Ok(None) if start.elapsed() < spin.budget => std::thread::yield_now(),
                Ok(None) => {
                    spin.miss();
                    break;
                }
                Err(e) => {
                    self.failed = Some(e);
                    break;
                }
            }
        }
        self.spin = Some(spin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_halves_after_two_misses_drops_to_zero_and_grows_back_after_hits() {
        let mut s = Spin::new(Duration::from_micros(40));
        s.miss();
        assert_eq!(s.budget, Duration::from_micros(40));
        s.miss();
        assert_eq!(s.budget, Duration::from_micros(20));
        for _ in 0..20 {
            s.miss();
        }
        assert_eq!(s.budget, Duration::ZERO);
        s.hit();
        assert_eq!(s.budget, FLOOR);
        for _ in 0..10 {
            s.hit();
        }
        assert_eq!(s.budget, Duration::from_micros(40));
    }
}
