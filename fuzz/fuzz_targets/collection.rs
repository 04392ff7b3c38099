//! `voldisefs_crypto::Collection::decode` on arbitrary bytes (a collection's plaintext, which
//! whoever sealed the collection controls).
//!
//! Checked: no panic; an accepted listing has at most `MAX_COLLECTION_ENTRIES` entries whose
//! paths pass `check_path`, come in strictly ascending order (so no duplicates), never name a
//! folder of another entry, and whose sizes add up without overflow; re-encoding it gives the
//! input back (one encoding per listing); `Collection::new` of its entries accepts them too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voldisefs_crypto::{Collection, MAX_COLLECTION_ENTRIES, check_path};

fuzz_target!(|data: &[u8]| {
    let Ok(collection) = Collection::decode(data) else {
        return;
    };
    let entries = collection.entries();
    assert!(entries.len() <= MAX_COLLECTION_ENTRIES);
    let mut total = 0u64;
    for e in entries {
        assert_eq!(check_path(&e.path), Ok(()), "{:?}", e.path);
        total = total.checked_add(e.size).expect("sizes overflow");
    }
    assert_eq!(collection.total_size(), total);
    for pair in entries.windows(2) {
        assert!(pair[0].path.as_bytes() < pair[1].path.as_bytes());
    }
    for e in entries {
        let mut folder = e.path.as_str();
        while let Some((parent, _)) = folder.rsplit_once('/') {
            assert!(
                collection.find(parent).is_none(),
                "{parent:?} is a file and a folder"
            );
            folder = parent;
        }
    }
    assert_eq!(&collection.encode()[..], data);
    let rebuilt = Collection::new(entries.to_vec()).expect("accepted entries rebuild");
    assert_eq!(rebuilt, collection);
});
