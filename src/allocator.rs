//! The process's allocator: mimalloc 2, told to hand freed memory back at once.
//!
//! Allocation and freeing were about 17 % of the in-process path's samples under glibc's malloc.
//! With mimalloc the 10 M backlog takes 12 % less CPU per event, and the in-process path runs
//! 1.08× as fast with the options below (1.28× with mimalloc's own; benches/README.md,
//! "mimalloc"). Its memory depends on the version
//! and two options: on the 10 M backlog glibc peaked at 274 MB, mimalloc 3 at 296–321 MB, and
//! mimalloc 2 (this one) at 279 MB with freed memory purged at once (`purge_delay` 0) and its
//! arenas committed on demand (`arena_eager_commit` 0). Batch blocks need no glibc tuning any
//! more (they are pooled chunks, `store::chunks`); the C libraries (librdkafka, OpenSSL) call
//! glibc's malloc themselves.
//!
//! An operator's `MIMALLOC_PURGE_DELAY` or `MIMALLOC_ARENA_EAGER_COMMIT` wins: mimalloc has read
//! the environment already, and `mi_option_set_default` leaves an option it found there be.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_arena_eager_commit` in the bundled mimalloc 2.3's `mi_option_e` (libmimalloc-sys
/// 0.1.49, `c_src/mimalloc/v2/include/mimalloc.h`; the crate exports only its stable options as
/// constants). The tests below check both numbers against the variables' names.
const OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
/// `mi_option_purge_delay`: milliseconds before freed memory is returned; 0 returns it at once.
const OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Runs `tune` from the ELF initializers, before `main` and before the Rust runtime's first
/// allocation: mimalloc reserves its first arena then, and an option set later misses it (with
/// mimalloc 3, set from `main`, the 1 M backlog peaked at 264 MB; from here, 228 MB, as with
/// the variables). It sits beside `GLOBAL`, which every binary of the crate links.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static TUNE_BEFORE_MAIN: extern "C" fn() = {
    extern "C" fn before_main() {
        tune();
    }
    before_main
};

/// Sets the two options' defaults. Not thread safe (mimalloc's option setters are not): run by
/// `TUNE_BEFORE_MAIN` on Linux; elsewhere `main` calls it first thing.
pub fn tune() {
    // SAFETY: only changes options' defaults, before any other thread exists.
    unsafe {
        libmimalloc_sys::mi_option_set_default(OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set_default(OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const VARIABLES: [&str; 2] = ["MIMALLOC_PURGE_DELAY", "MIMALLOC_ARENA_EAGER_COMMIT"];
    /// Set in the copy of this test binary that `an_operators_variables_win` starts.
    const CHILD: &str = "TOKENTRAIL_ALLOCATOR_TEST_CHILD";

    fn options() -> (i64, i64) {
        // SAFETY: reading an option is what mimalloc's own allocation paths do at any time.
        #[allow(clippy::useless_conversion)] // `c_long` is 32 bits wide on some targets.
        let get = |option| i64::from(unsafe { libmimalloc_sys::mi_option_get(option) });
        (get(OPTION_PURGE_DELAY), get(OPTION_ARENA_EAGER_COMMIT))
    }

    #[test]
    fn the_options_are_set_before_main() {
        // Nothing in this test binary calls `tune`: only `TUNE_BEFORE_MAIN` can have set them.
        if VARIABLES
            .iter()
            .any(|name| std::env::var_os(name).is_some())
        {
            return;
        }
        assert_eq!(options(), (0, 0));
    }

    #[test]
    fn an_operators_variables_win_and_name_the_same_options() {
        // A copy of this binary with both variables set must read their values through the two
        // numbers: so the numbers are the named options (a renumbering mimalloc fails here),
        // and `tune` left an operator's choice alone.
        const NAME: &str = "allocator::tests::an_operators_variables_win_and_name_the_same_options";
        if std::env::var_os(CHILD).is_some() {
            println!("options {:?}", options());
            return;
        }
        let out = Command::new(std::env::current_exe().expect("test binary"))
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env(VARIABLES[0], "7")
            .env(VARIABLES[1], "3")
            .output()
            .expect("run the test binary again");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("options (7, 3)"), "{stdout}");
    }
}
