//! Worker threads of a call: the process's rayon pool, or one of the asked size (built once per
//! size and process, so a forked child builds its own).

use rayon::ThreadPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Runs `f` on `threads` workers (`None`: rayon's global pool, all cores, as the CLI).
pub fn run_on<T: Send>(threads: Option<usize>, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    let Some(n) = threads else {
        return Ok(f());
    };
    if n == 0 {
        anyhow::bail!("threads = 0: expected at least 1 (or None for every core)");
    }
    Ok(pool(n)?.install(f))
}

/// Pools by (process id, threads).
type Pools = HashMap<(u32, usize), Arc<ThreadPool>>;

fn pool(n: usize) -> anyhow::Result<Arc<ThreadPool>> {
    static POOLS: Mutex<Option<Pools>> = Mutex::new(None);
    let key = (std::process::id(), n);
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    let pools = pools.get_or_insert_with(HashMap::new);
    if let Some(p) = pools.get(&key) {
        return Ok(p.clone());
    }
    let p = Arc::new(rayon::ThreadPoolBuilder::new().num_threads(n).build()?);
    pools.insert(key, p.clone());
    Ok(p)
}
