//! The C library's `getrandom`, replaced in this test binary so that a seed replays byte for
//! byte.
//!
//! Every random draw of a node goes through `getrandom` (the `getrandom` crate asks the C
//! library's symbol, which this binary's definition takes the place of): node ids, sealing's
//! nonces, salts and keys, proof nonces, gossip seeds, Noise's ephemeral keys, and the keys of
//! the standard library's `HashMap`s, from which tokio also seeds its choice among ready
//! `select!` branches. In a seed's own process ([`VAR`] set, see `check_seeds`) each thread
//! draws from a stream that depends on the seed alone; anywhere else (the parent process,
//! every other test binary) it is the operating system's generator.
//!
//! Every thread's stream starts alike: the simulation runs on one thread (a node's CPU work
//! runs inline there, `voldisefs_node`'s `cpu.rs`), so no two draws that must differ come
//! from two threads.

// The one unsafe code of the crate (see Cargo.toml): a C library function's definition.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::OnceLock;

/// Set (to the seed) in the process that runs one seed: its random bytes come from the seed.
pub(crate) const VAR: &str = "VOLDISEFS_SIM_ENTROPY";

thread_local! {
    /// This thread's position in its stream.
    static STATE: Cell<Option<u64>> = const { Cell::new(None) };
}

/// The seed of this process's random bytes ([`VAR`]), read once without allocating (the
/// standard library may ask for random bytes before anything else ran).
fn seed() -> Option<u64> {
    static SEED: OnceLock<Option<u64>> = OnceLock::new();
    *SEED.get_or_init(|| {
        let name = c"VOLDISEFS_SIM_ENTROPY";
        // SAFETY: `getenv` reads the environment, which this test binary never changes.
        let value = unsafe { libc::getenv(name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: a non-null `getenv` result is a NUL-terminated string.
        let text = unsafe { std::ffi::CStr::from_ptr(value) };
        text.to_str().ok()?.parse().ok()
    })
}

/// The next 8 bytes of this thread's stream (SplitMix64 from the seed).
fn next(seed: u64) -> u64 {
    STATE.with(|state| {
        let s = state
            .get()
            .unwrap_or(seed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(Some(s));
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// `getrandom(2)`: `len` bytes at `buf`, from the seed's stream in a seed's own process and
/// from the kernel otherwise.
///
/// # Safety
/// `buf` points to `len` writable bytes, as `getrandom(2)` requires of its callers.
#[unsafe(no_mangle)]
#[allow(unreachable_pub)] // public for the linker, not for Rust callers
pub unsafe extern "C" fn getrandom(buf: *mut u8, len: usize, flags: u32) -> isize {
    let Some(seed) = seed() else {
        // SAFETY: the caller's buffer, passed on to the system call unchanged.
        return unsafe { libc::syscall(libc::SYS_getrandom, buf, len, flags) as isize };
    };
    let mut filled = 0;
    while filled < len {
        let word = next(seed).to_le_bytes();
        let take = (len - filled).min(word.len());
        // SAFETY: `filled + take <= len`, inside the caller's buffer.
        unsafe { std::ptr::copy_nonoverlapping(word.as_ptr(), buf.add(filled), take) };
        filled += take;
    }
    len as isize
}
