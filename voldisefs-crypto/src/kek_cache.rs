//! [`KekCache`]: recently derived password keys, so reading a file again (or the next file
//! sealed under the same password and salt) does not run Argon2id again.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::Result;
use crate::kdf::{KEK_LEN, KdfParams};
use crate::password::Password;
use crate::primitives::MacKey;

/// Domain separation of the cache's lookup keys.
const LOOKUP_LABEL: &[u8] = b"voldisefs kek cache v1";

/// A bounded RAM cache of key-encryption keys (the Argon2id output), for
/// [`FileOpener::open_cached`](crate::FileOpener::open_cached) and
/// [`FileOpener::open_caching`](crate::FileOpener::open_caching).
///
/// - Neither passwords nor plain hashes of them are kept: an entry is found by
///   HMAC-SHA256, under a random key made when the cache is, of the KDF parameters, the salt
///   and the password. That key lives in this process's memory only (`ring` does not wipe it
///   when dropped; the `voldisefs` binary's zero-on-free allocator does), so an entry alone
///   allows no guessing; whoever can read the whole process memory while entries
///   live can test guesses fast, but could read the cached keys (and the files they open)
///   anyway.
/// - Only keys whose commitment checked out (the right password) are stored, so a wrong
///   password always pays a full Argon2id run: no fast oracle for online guessing.
/// - Bounded: at most `max_entries` keys, each forgotten `max_age` after it was derived (the
///   oldest evicted first when full); evicted, expired and cleared keys are zeroed. Expired
///   keys go at the next lookup, insert or [`sweep`](Self::sweep), so an owner that wants the
///   age bound to hold while the cache is idle calls `sweep` on a timer (a node does, every
///   second). The table is sized for `max_entries` (up to 4,096) up front, so it never grows
///   by copying keys into a new allocation and freeing the old one unwiped.
pub struct KekCache {
    secret: MacKey,
    max_entries: usize,
    max_age: Duration,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

struct Entry {
    kek: Zeroizing<[u8; KEK_LEN]>,
    at: Instant,
}

impl std::fmt::Debug for KekCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KekCache")
            .field("max_entries", &self.max_entries)
            .field("max_age", &self.max_age)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl KekCache {
    /// An empty cache of at most `max_entries` keys (0: caches nothing), each kept at most
    /// `max_age`. Fails only if the system random generator does.
    pub fn new(max_entries: usize, max_age: Duration) -> Result<Self> {
        Ok(Self {
            secret: MacKey::generate()?,
            max_entries,
            max_age,
            entries: Mutex::new(HashMap::with_capacity(max_entries.min(4096))),
        })
    }

    /// Keys held now (expired ones included until the next lookup, insert or sweep).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the cache holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets (and zeroes) every key, e.g. when the node stops.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Forgets (and zeroes) every key older than the cache's maximum age; returns how many.
    pub fn sweep(&self) -> usize {
        self.sweep_at(Instant::now())
    }

    fn sweep_at(&self, now: Instant) -> usize {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|_, e| now.saturating_duration_since(e.at) < self.max_age);
        before - entries.len()
    }

    /// The lookup key of (`params`, `salt`, `password`).
    pub(crate) fn lookup(
        &self,
        params: &KdfParams,
        salt: &[u8; 16],
        password: &Password,
    ) -> [u8; 32] {
        self.secret.mac(&[
            LOOKUP_LABEL,
            &params.m_kib().to_be_bytes(),
            &params.t().to_be_bytes(),
            &params.p().to_be_bytes(),
            salt,
            password.as_bytes(),
        ])
    }

    /// The key cached under `lookup`, unless it is missing or expired.
    pub(crate) fn get(&self, lookup: &[u8; 32]) -> Option<Zeroizing<[u8; KEK_LEN]>> {
        let mut entries = self.lock();
        let now = Instant::now();
        entries.retain(|_, e| now.duration_since(e.at) < self.max_age);
        entries.get(lookup).map(|e| e.kek.clone())
    }

    /// Caches `kek` under `lookup`, evicting expired keys, then the oldest while full.
    pub(crate) fn insert(&self, lookup: [u8; 32], kek: &Zeroizing<[u8; KEK_LEN]>) {
        if self.max_entries == 0 {
            return;
        }
        let mut entries = self.lock();
        let now = Instant::now();
        entries.retain(|_, e| now.duration_since(e.at) < self.max_age);
        while entries.len() >= self.max_entries && !entries.contains_key(&lookup) {
            let oldest = entries.iter().min_by_key(|(_, e)| e.at).map(|(k, _)| *k);
            match oldest {
                Some(k) => entries.remove(&k),
                None => break,
            };
        }
        entries.insert(
            lookup,
            Entry {
                kek: kek.clone(),
                at: now,
            },
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_forgets_keys_past_their_age_and_only_those() {
        let cache = KekCache::new(8, Duration::from_secs(60)).unwrap();
        let kek = Zeroizing::new([7u8; KEK_LEN]);
        cache.insert([1; 32], &kek);
        assert_eq!(cache.sweep(), 0);
        assert_eq!(cache.len(), 1);
        let now = Instant::now();
        assert_eq!(cache.sweep_at(now + Duration::from_secs(30)), 0);
        assert_eq!(cache.sweep_at(now + Duration::from_secs(61)), 1);
        assert!(cache.is_empty());
        assert!(cache.get(&[1; 32]).is_none());
    }
}
