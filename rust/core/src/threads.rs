//! Thread-count control. `None` uses rayon's global pool, whose size follows
//! `std::thread::available_parallelism` (and so respects cgroup CPU quotas in containers);
//! `Some(t)` runs on a pool of exactly `t` threads.
//!
//! Pools are cached per *calling* thread: two Python threads that each ask for one thread must
//! get two workers, not queue on one shared single-thread pool (which would undo the point of
//! releasing the GIL). A caller's pools end with the caller.

use std::cell::RefCell;
use std::sync::Arc;

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};
use crate::invalid;

thread_local! {
    /// This calling thread's pools, by thread count.
    static POOLS: RefCell<Vec<(usize, Arc<ThreadPool>)>> = const { RefCell::new(Vec::new()) };
}

fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    POOLS.with(|pools| {
        if let Some((_, p)) = pools.borrow().iter().find(|(t, _)| *t == threads) {
            return Ok(p.clone());
        }
        let p = Arc::new(
            ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("personae-{i}"))
                .build()
                .map_err(|e| Error::Io(format!("cannot start {threads} threads: {e}")))?,
        );
        pools.borrow_mut().push((threads, p.clone()));
        Ok(p)
    })
}

/// Runs `f` with `num_threads` worker threads.
pub fn install<R: Send>(num_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match num_threads {
        None => Ok(f()),
        Some(0) => Err(invalid!("num_threads must be at least 1, got 0")),
        Some(t) => Ok(pool(t)?.install(f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_get_their_own_pools() {
        // Two callers asking for one thread each must run at the same time: each blocks until
        // the other has started, which deadlocks (and the test times out) on a shared pool.
        let barrier = Arc::new(std::sync::Barrier::new(2));
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
        assert_eq!(install(Some(2), rayon::current_num_threads).unwrap(), 2);
    }
}
