//! The process's allocator: mimalloc, set to give freed memory back to the OS at once.

/// mimalloc: a run allocates and frees hundreds of megabytes of history and logs; glibc's
/// malloc gives them back to the OS and faults them in again (mimalloc: about 20% faster).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's `mi_option_set` (`include/mimalloc.h`), which the `mimalloc` crate does not wrap.
#[cfg(target_os = "linux")]
extern "C" {
    fn mi_option_set(option: std::os::raw::c_int, value: std::os::raw::c_long);
}

/// `mi_option_purge_delay` and `mi_option_arena_eager_commit` of `mi_option_t`.
#[cfg(target_os = "linux")]
const MI_OPTION_ARENA_EAGER_COMMIT: std::os::raw::c_int = 4;
#[cfg(target_os = "linux")]
const MI_OPTION_PURGE_DELAY: std::os::raw::c_int = 15;

/// Makes mimalloc give freed memory back to the OS at once (purge delay 0, as
/// `MIMALLOC_PURGE_DELAY=0` would) and commit arena memory as it is used rather than up
/// front (`MIMALLOC_ARENA_EAGER_COMMIT=0`). A checked run frees the simulated cluster before
/// its checkers build their tables; with the defaults the freed pages stay resident and the
/// run's peak memory is their sum (205 MB instead of 119 MB for
/// `benches/workloads/standard.toml`, benches/PERFORMANCE.md), at no measurable cost in time.
///
/// It runs as an ELF constructor, before the Rust runtime's first allocation: mimalloc
/// reserves its first arena then, and a later `mi_option_set` no longer changes how that
/// arena commits.
#[cfg(target_os = "linux")]
extern "C" fn return_freed_memory() {
    // SAFETY: mi_option_set only stores an option value; both options are read by mimalloc on
    // each purge or arena reservation, and any value is valid for them.
    unsafe {
        mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static RETURN_FREED_MEMORY: extern "C" fn() = return_freed_memory;
