//! One model step with rayon's other pool threads kept hot: a helper job per other thread
//! polls for the step's parallel work ([`rayon::yield_now`]) until the step ends, instead of
//! each thread parking between the step's hundreds of short parallel loops and being woken
//! for the next (the decode cost at widths of 576–896). Only safe rayon API: the step's
//! loops are ordinary rayon loops, the helpers only steal their pieces sooner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rayon::Yield;

/// Idle polls that only `spin_loop` before the helper also yields its core to the OS
/// between polls (another process may be waiting for it).
const SPINS_BEFORE_OS_YIELD: u32 = 256;
/// A helper that found no work for this long leaves (back to rayon's own park and wake):
/// the step has gone sequential for a while.
const IDLE_LIMIT: Duration = Duration::from_millis(2);
/// A gap this long between two of a helper's polls means the OS ran something else on its
/// core: the machine is oversubscribed, where a spinning helper only takes time from the
/// step's own thread, so it leaves.
const PREEMPTED: Duration = Duration::from_micros(200);

/// Runs `f` on the calling rayon pool thread while every other thread of the pool runs a
/// helper that takes the pieces of `f`'s parallel loops as soon as they are pushed. Off the
/// pool, in a pool of one thread, or with `ROCMFORGE_CPU_HOT_TEAM=0` (for comparisons), `f`
/// just runs.
pub fn run_with_hot_team<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on =
        *ON.get_or_init(|| std::env::var_os("ROCMFORGE_CPU_HOT_TEAM").is_none_or(|v| v != "0"));
    let owner = rayon::current_thread_index();
    let helpers = rayon::current_num_threads().saturating_sub(1);
    if !on || owner.is_none() || helpers == 0 {
        return f();
    }
    let done = AtomicBool::new(false);
    rayon::in_place_scope(|s| {
        for _ in 0..helpers {
            s.spawn(|_| keep_hot(&done, owner));
        }
        let r = f();
        done.store(true, Ordering::Release);
        r
    })
}

/// A helper's loop: run whatever rayon work it can find until `done`. On the owner's own
/// thread (it popped a helper while waiting for a stolen piece) it returns at once: the
/// owner must get back to its step.
fn keep_hot(done: &AtomicBool, owner: Option<usize>) {
    if rayon::current_thread_index() == owner {
        return;
    }
    let mut idle_polls = 0u32;
    let mut idle_since = Instant::now();
    let mut last_poll = idle_since;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(Yield::Executed) => {
                idle_polls = 0;
                last_poll = Instant::now();
            }
            Some(Yield::Idle) => {
                let now = Instant::now();
                if idle_polls == 0 {
                    idle_since = now;
                }
                if now - last_poll > PREEMPTED || now - idle_since > IDLE_LIMIT {
                    return;
                }
                last_poll = now;
                idle_polls = idle_polls.saturating_add(1);
                if idle_polls < SPINS_BEFORE_OS_YIELD {
                    std::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::run_with_hot_team;
    use rayon::prelude::*;

    #[test]
    fn a_step_with_hot_helpers_computes_what_it_computes_alone() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let step = || {
            (0..200)
                .map(|i| {
                    let v: Vec<u64> = (0..1000u64).into_par_iter().map(|x| x * i).collect();
                    v.par_iter().sum::<u64>()
                })
                .sum::<u64>()
        };
        let alone = step();
        let hot = pool.install(|| run_with_hot_team(step));
        assert_eq!(hot, alone);
        // Off the pool the step just runs.
        assert_eq!(run_with_hot_team(step), alone);
    }
}
