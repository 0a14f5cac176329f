//! The allocator settings of the binaries that compact (`cwms` and the compactor Lambda), which
//! both use mimalloc as their global allocator.
//!
//! mimalloc 3 keeps memory it has freed for a second before returning it to the system (its
//! `purge_delay`, 1,000 ms by default). Compaction frees a partition's points as soon
//! as the partition is published and allocates the next ones at once, from other threads, so the
//! kept memory was never reused in time and piled up: with the same points held (at most about
//! 140,000 under `--max-points 100000`), peak RSS grew with the input, from 235 MiB for one hour to
//! 555 MiB for sixteen (benches/compactor/memory.sh). Purging at once keeps the peak to what is held,
//! at no measurable cost in time (benches/README.md, "Memory").

/// mimalloc's `mi_option_purge_delay`: its place in `mi_option_t` in the mimalloc 3 header that
/// libmimalloc-sys 0.1.49 builds (`c_src/mimalloc/v3/include/mimalloc.h`), which the crate does
/// not name. The lock file pins that version; the test below checks the option is the one
/// with purge_delay's default and neighbours.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc return freed memory to the system at once, unless `MIMALLOC_PURGE_DELAY` is
/// set (mimalloc's own setting, then kept as given). Call it first thing in `main`; it only
/// changes when memory goes back, never what is allocated.
pub fn return_freed_memory_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_set only stores the value of a known option; mimalloc reads it when it
    // next considers purging.
    unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_mimallocs_purge_delay() {
        let get = |option| unsafe { libmimalloc_sys::mi_option_get(option) };
        // purge_delay's default (1000 ms), between deprecated_eager_commit_delay (1) and
        // use_numa_nodes (0), with os_tag (100) three places on: mimalloc 3's option table.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(get(PURGE_DELAY), 1000);
        }
        assert_eq!((get(PURGE_DELAY - 1), get(PURGE_DELAY + 1), get(PURGE_DELAY + 3)), (1, 0, 100), "mimalloc's option table moved");
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            return_freed_memory_at_once();
            assert_eq!(get(PURGE_DELAY), 0);
        }
    }
}
