//! The password-key cache: hits skip the KDF, wrong passwords never hit nor get cached, and
//! the bounds hold.

use std::time::Duration;

use super::{data, seal};
use crate::{Error, FileOpener, KdfParams, KekCache, Password};

fn ceiling() -> KdfParams {
    KdfParams::insecure_test()
}

#[test]
fn a_cached_key_opens_the_file_again_without_the_kdf() {
    let sealed = seal("pw", &data(1000, 1));
    let (id, record) = (&sealed.record.id, &sealed.record.bytes[..]);
    let cache = KekCache::new(8, Duration::from_secs(60)).unwrap();
    let pw = Password::new("pw");
    // Nothing cached yet: the cache-only open says so instead of deriving.
    assert!(
        FileOpener::open_cached(id, record, &pw, &ceiling(), &cache)
            .unwrap()
            .is_none()
    );
    let first = FileOpener::open_caching(id, record, &pw, &ceiling(), &cache).unwrap();
    assert_eq!(cache.len(), 1);
    let again = FileOpener::open_cached(id, record, &pw, &ceiling(), &cache)
        .unwrap()
        .expect("the key is cached");
    assert_eq!(again.manifest().name(), first.manifest().name());
    let chunk = sealed.chunk_bytes().remove(0);
    assert_eq!(&again.open_chunk(0, chunk).unwrap()[..], &data(1000, 1)[..]);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn wrong_passwords_never_hit_and_are_never_cached() {
    let sealed = seal("pw", &data(10, 2));
    let (id, record) = (&sealed.record.id, &sealed.record.bytes[..]);
    let cache = KekCache::new(8, Duration::from_secs(60)).unwrap();
    FileOpener::open_caching(id, record, &Password::new("pw"), &ceiling(), &cache).unwrap();
    let wrong = Password::new("pw2");
    assert!(
        FileOpener::open_cached(id, record, &wrong, &ceiling(), &cache)
            .unwrap()
            .is_none()
    );
    let refused = FileOpener::open_caching(id, record, &wrong, &ceiling(), &cache).unwrap_err();
    assert!(matches!(refused, Error::Decrypt), "{refused}");
    assert_eq!(cache.len(), 1, "the wrong password's key was cached");
    // Another file under the same password has its own salt: no hit.
    let other = seal("pw", &data(10, 3));
    assert!(
        FileOpener::open_cached(
            &other.record.id,
            &other.record.bytes,
            &Password::new("pw"),
            &ceiling(),
            &cache
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn the_cache_keeps_at_most_its_entries_and_forgets_old_keys() {
    let pw = Password::new("pw");
    let files: Vec<_> = (0..3).map(|i| seal("pw", &data(10, 10 + i))).collect();
    let cache = KekCache::new(2, Duration::from_secs(60)).unwrap();
    for f in &files {
        FileOpener::open_caching(&f.record.id, &f.record.bytes, &pw, &ceiling(), &cache).unwrap();
    }
    assert_eq!(cache.len(), 2);
    let hits = files
        .iter()
        .filter(|f| {
            FileOpener::open_cached(&f.record.id, &f.record.bytes, &pw, &ceiling(), &cache)
                .unwrap()
                .is_some()
        })
        .count();
    assert_eq!(hits, 2, "the two newest keys stay");

    let expired = KekCache::new(2, Duration::ZERO).unwrap();
    let f = &files[0];
    FileOpener::open_caching(&f.record.id, &f.record.bytes, &pw, &ceiling(), &expired).unwrap();
    assert!(
        FileOpener::open_cached(&f.record.id, &f.record.bytes, &pw, &ceiling(), &expired)
            .unwrap()
            .is_none()
    );
    let none = KekCache::new(0, Duration::from_secs(60)).unwrap();
    FileOpener::open_caching(&f.record.id, &f.record.bytes, &pw, &ceiling(), &none).unwrap();
    assert!(none.is_empty());
}
