//! Random bytes from the operating system: every random draw of the native crates (ids,
//! nonces, salts, keys, gossip seeds) comes from [`fill`].
//!
//! One source, and the one a test can replace: [`fill`] asks the C library's `getrandom`
//! (through the `getrandom` crate), as the standard library does for `HashMap` keys and `uuid`
//! for node ids. The whole-node simulation (`voldisefs-node/tests/simulation`) defines that
//! symbol in its own binary, which makes a seed replay byte for byte; nothing else in the
//! workspace can or does change it.

/// The operating system's generator failed (it never does on a supported system).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the system random generator failed")]
pub struct EntropyError;

/// Fills `out` with random bytes from the operating system's secure generator.
pub fn fill(out: &mut [u8]) -> Result<(), EntropyError> {
    getrandom::fill(out).map_err(|_| EntropyError)
}

/// `N` random bytes from [`fill`].
pub fn bytes<const N: usize>() -> Result<[u8; N], EntropyError> {
    let mut out = [0u8; N];
    fill(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ() {
        let a: [u8; 32] = bytes().unwrap();
        let b: [u8; 32] = bytes().unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
