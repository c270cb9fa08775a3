//! Thread-count control and cooperative interruption.
//!
//! `None` threads uses rayon's global pool, whose size follows
//! `std::thread::available_parallelism` (and so respects cgroup CPU quotas in containers).
//! `Some(t)` runs on a pool of `min(t, max_threads())` threads. Pools are checked out for the
//! duration of one call, so two callers that each ask for one thread get two workers instead of
//! queueing on a shared one-thread pool; idle pools are cached, at most one per size, so the
//! number of live threads stays bounded whatever sizes callers ask for.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};
use crate::invalid;

/// The most threads any call gets: the CPUs this process may use.
pub fn max_threads() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Idle pools, at most one per size (sizes are capped by [`max_threads`]).
static IDLE: Mutex<Vec<ThreadPool>> = Mutex::new(Vec::new());

fn checkout(threads: usize) -> Result<ThreadPool> {
    if let Ok(mut idle) = IDLE.lock() {
        if let Some(p) = idle.iter().position(|p| p.current_num_threads() == threads) {
            return Ok(idle.swap_remove(p));
        }
    }
    ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("personae-{i}"))
        .build()
        .map_err(|e| Error::Threads(format!("cannot start {threads} worker threads: {e}")))
}

fn give_back(pool: ThreadPool) {
    if let Ok(mut idle) = IDLE.lock() {
        let size = pool.current_num_threads();
        if !idle.iter().any(|p| p.current_num_threads() == size) {
            idle.push(pool);
        }
    }
}

/// Checks a requested thread count: `None` (all cores) or at least 1; larger requests are
/// capped at [`max_threads`].
pub fn resolve(num_threads: Option<i64>) -> Result<Option<usize>> {
    match num_threads {
        None => Ok(None),
        Some(t) if t < 1 => Err(invalid!("num_threads must be at least 1, got {t}")),
        Some(t) => Ok(Some((t as u64).min(max_threads() as u64) as usize)),
    }
}

/// Runs `f` with `num_threads` worker threads (see the module docs).
pub fn install<R: Send>(num_threads: Option<i64>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match resolve(num_threads)? {
        None => Ok(f()),
        Some(t) => {
            let pool = checkout(t)?;
            let r = pool.install(f);
            give_back(pool);
            Ok(r)
        }
    }
}

/// A stop request shared between a caller and a running computation. Long loops call
/// [`Stop::check`] between units of work (a chunk of users), so a request takes effect within
/// one unit.
#[derive(Debug, Default)]
pub struct Stop(AtomicBool);

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the computation to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// [`Error::Interrupted`] once a stop was requested.
    #[inline]
    pub fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    #[test]
    fn callers_get_their_own_pools() {
        // Two callers asking for one thread each must run at the same time: each blocks until
        // the other has started, which deadlocks (and the test times out) on a shared pool.
        let barrier = Arc::new(Barrier::new(2));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let b = barrier.clone();
                std::thread::spawn(move || install(Some(1), || b.wait()).unwrap())
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(install(Some(0), || ()).is_err());
        assert!(install(Some(-3), || ()).is_err());
        assert_eq!(install(Some(1), rayon::current_num_threads).unwrap(), 1);
    }

    #[test]
    fn thread_counts_are_capped_and_pools_bounded() {
        let max = max_threads();
        for t in [1, 2, 7, 64, 10_000, i64::MAX] {
            let got = install(Some(t), rayon::current_num_threads).unwrap();
            assert_eq!(got, (t as usize).min(max));
        }
        let idle = IDLE.lock().unwrap();
        assert!(idle.len() <= max, "{} idle pools", idle.len());
    }

    #[test]
    fn stop_is_observed() {
        let s = Stop::new();
        assert!(s.check().is_ok());
        s.request();
        assert_eq!(s.check(), Err(Error::Interrupted));
    }
}
