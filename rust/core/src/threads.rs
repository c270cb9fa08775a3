//! Thread-count control. `None` uses rayon's global pool, whose size follows
//! `std::thread::available_parallelism` (and so respects cgroup CPU quotas in containers);
//! `Some(t)` runs on a cached pool of exactly `t` threads.

use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};
use crate::invalid;

/// Pools by thread count, created on first use and kept for the life of the process.
type PoolCache = Mutex<Vec<(usize, Arc<ThreadPool>)>>;

static POOLS: OnceLock<PoolCache> = OnceLock::new();

fn pool(threads: usize) -> Result<Arc<ThreadPool>> {
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    let mut guard = pools.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, p)) = guard.iter().find(|(t, _)| *t == threads) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("personae-{i}"))
            .build()
            .map_err(|e| Error::Io(format!("cannot start {threads} threads: {e}")))?,
    );
    guard.push((threads, p.clone()));
    Ok(p)
}

/// Runs `f` with `num_threads` worker threads.
pub fn install<R: Send>(num_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match num_threads {
        None => Ok(f()),
        Some(0) => Err(invalid!("num_threads must be at least 1, got 0")),
        Some(t) => Ok(pool(t)?.install(f)),
    }
}
