//! The pipelines over [`MemoryStore`] and over hostile stores written here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;

use super::*;
use crate::{ChunkSize, EncodedStripe, Error, FileKind, KdfParams, Password, Redundancy};

const CHUNK: usize = 64 * 1024;

/// Counts the jobs it runs (all on a real pool).
struct Counting(Threads, AtomicUsize);

impl Offload for Counting {
    fn spawn(&self, job: Job) {
        self.1.fetch_add(1, Ordering::Relaxed);
        self.0.spawn(job);
    }
}

fn settings() -> Settings {
    Settings {
        kdf: KdfParams::insecure_test(),
        chunk_size: ChunkSize::from_bytes(CHUNK as u64).unwrap(),
        parallelism: 4,
        ..Settings::default()
    }
}

fn client(store: Arc<dyn ObjectStore>) -> Client {
    Client::new(store, Arc::new(Threads::new(2).unwrap()), settings()).unwrap()
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// `bytes` as a body of uneven pieces.
fn body(bytes: &[u8]) -> impl futures_util::Stream<Item = Result<Bytes, String>> + Unpin {
    let pieces: Vec<Result<Bytes, String>> = bytes
        .chunks(10_007)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    futures_util::stream::iter(pieces)
}

fn pw() -> Password {
    Password::new("correct horse")
}

async fn read(
    client: &Client,
    opened: &Opened,
    range: Option<(u64, u64)>,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(client.read(opened, range)?);
    while let Some(piece) = stream.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

#[tokio::test]
async fn files_of_every_boundary_size_round_trip_by_password_and_read_key() {
    let store = Arc::new(MemoryStore::new());
    let offload = Arc::new(Counting(Threads::new(2).unwrap(), AtomicUsize::new(0)));
    let client = Client::new(store.clone(), offload.clone(), settings()).unwrap();
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5] {
        let bytes = data(len);
        let before = offload.1.load(Ordering::Relaxed);
        let options = PutOptions::file(format!("f{len}"), Redundancy::Replicas(3));
        let receipt = client
            .put(Keying::Password(pw()), options, body(&bytes))
            .await
            .unwrap();
        let chunks = crate::chunk_count_for(len as u64, settings().chunk_size);
        assert_eq!((receipt.size, receipt.chunks), (len as u64, chunks));
        assert_eq!(receipt.objects.len() as u64, chunks + 1);
        // Argon2id, every chunk's sealing and the record ran off the caller's task.
        assert!(offload.1.load(Ordering::Relaxed) - before >= chunks as usize + 2);
        let by_password = client
            .open(receipt.id, Access::Password(pw()))
            .await
            .unwrap();
        assert_eq!(by_password.manifest().name(), format!("f{len}"));
        assert_eq!(read(&client, &by_password, None).await.unwrap(), bytes);
        let by_key = client
            .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
            .await
            .unwrap();
        assert!(by_key.delete_key().is_none());
        assert_eq!(read(&client, &by_key, None).await.unwrap(), bytes);
    }
    let wrong = client.open([0; 32], Access::Password(pw())).await;
    assert!(matches!(wrong, Err(Error::NotFound)), "{wrong:?}");
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_nothing_leaks_into_the_store() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let secret = b"the plaintext nobody may see".repeat(100);
    let mut options = PutOptions::file("secret-name.txt", Redundancy::Replicas(1));
    options.once = true;
    let receipt = client
        .put(Keying::Password(pw()), options, body(&secret))
        .await
        .unwrap();
    let wrong = client
        .open(receipt.id, Access::Password(Password::new("guess")))
        .await;
    assert!(matches!(wrong, Err(Error::Decrypt)), "{wrong:?}");
    for object in store.contents() {
        for needle in [
            &secret[..40],
            b"secret-name",
            b"correct horse",
            receipt.read_key.as_bytes(),
        ] {
            assert!(!object.windows(needle.len()).any(|w| w == needle));
        }
    }
}

#[tokio::test]
async fn ranges_fetch_only_what_they_touch_and_cut_exactly() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let bytes = data(3 * CHUNK + 100);
    let options = PutOptions::file("r", Redundancy::Replicas(3));
    let receipt = client
        .put(Keying::Password(pw()), options, body(&bytes))
        .await
        .unwrap();
    let opened = client
        .open(receipt.id, Access::Password(pw()))
        .await
        .unwrap();
    let n = bytes.len() as u64;
    for (first, last) in [
        (0, 0),
        (5, 9),
        (CHUNK as u64 - 1, CHUNK as u64),
        (n - 1, n - 1),
        (10, n + 50),
    ] {
        let got = read(&client, &opened, Some((first, last))).await.unwrap();
        let last = last.min(n - 1);
        assert_eq!(got, bytes[first as usize..=last as usize], "{first}-{last}");
    }
    assert!(matches!(
        client.read(&opened, Some((n, n))).err(),
        Some(Error::RangeNotSatisfiable { .. })
    ));
}

#[tokio::test]
async fn striped_files_round_trip() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let bytes = data(2 * CHUNK + 3);
    let spec: Redundancy = "rs:2+1".parse().unwrap();
    let receipt = client
        .put(
            Keying::Password(pw()),
            PutOptions::file("s", spec),
            body(&bytes),
        )
        .await
        .unwrap();
    assert_eq!(
        receipt.stored,
        Stored {
            copies: 3,
            wanted: 3
        },
        "shards on 3 of 3, the record on 1 of 1: every object fully kept"
    );
    let opened = client
        .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
        .await
        .unwrap();
    assert!(opened.manifest().is_striped());
    assert_eq!(read(&client, &opened, None).await.unwrap(), bytes);
    assert_eq!(
        read(&client, &opened, Some((CHUNK as u64, CHUNK as u64 + 9)))
            .await
            .unwrap(),
        bytes[CHUNK..CHUNK + 10]
    );
}

/// A store of two sources: source 0 is `liar` (answers every read with what `lie` makes of
/// the truth), source 1 honest.
struct TwoSources {
    honest: MemoryStore,
    lie: Box<dyn Fn(Bytes) -> Option<Bytes> + Send + Sync>,
    honest_up: std::sync::atomic::AtomicBool,
    reported: Mutex<Vec<usize>>,
}

impl ObjectStore for TwoSources {
    fn put(&self, objects: Vec<Object>) -> BoxFuture<'_, Result<Stored, StoreError>> {
        self.honest.put(objects)
    }
    fn put_stripe(&self, stripe: EncodedStripe) -> BoxFuture<'_, Result<Stored, StoreError>> {
        self.honest.put_stripe(stripe)
    }
    fn get(
        &self,
        source: usize,
        id: [u8; 32],
        kind: ObjectKind,
    ) -> BoxFuture<'_, Result<Fetched, StoreError>> {
        Box::pin(async move {
            if source == 1 && !self.honest_up.load(Ordering::Relaxed) {
                return Err(StoreError::new(
                    StoreErrorKind::Unreachable,
                    "source 1 is down",
                ));
            }
            let truth = self.honest.get(0, id, kind).await?;
            Ok(match (source, truth) {
                (0, Fetched::Found(bytes)) => match (self.lie)(bytes) {
                    Some(lie) => Fetched::Found(lie),
                    None => Fetched::Missing,
                },
                (_, truth) => truth,
            })
        })
    }
    fn delete(
        &self,
        key: crate::DeleteKey,
        ids: Vec<[u8; 32]>,
        scope: DeleteScope,
    ) -> BoxFuture<'_, Result<(), StoreError>> {
        self.honest.delete(key, ids, scope)
    }
    fn sources(&self) -> usize {
        2
    }
    fn source_name(&self, source: usize) -> String {
        format!("node-{source}")
    }
    fn report_bad(&self, source: usize, _id: [u8; 32]) {
        self.reported.lock().unwrap().push(source);
    }
}

fn two_sources(lie: impl Fn(Bytes) -> Option<Bytes> + Send + Sync + 'static) -> Arc<TwoSources> {
    Arc::new(TwoSources {
        honest: MemoryStore::new(),
        lie: Box::new(lie),
        honest_up: true.into(),
        reported: Mutex::new(Vec::new()),
    })
}

#[tokio::test]
async fn wrong_bytes_from_one_source_are_caught_reported_and_taken_from_the_next() {
    let flip = |bytes: Bytes| {
        let mut v = bytes.to_vec();
        let mid = v.len() / 2;
        v[mid] ^= 1;
        Some(Bytes::from(v))
    };
    let other = data(CHUNK);
    for spec in ["replicas:3", "rs:2+1"] {
        let spec: Redundancy = spec.parse().unwrap();
        let bytes = data(2 * CHUNK + 1);
        // Flipped bits, and another object's bytes (a substitution), are both caught.
        let substitute = Bytes::from(other.clone());
        let liars: Vec<Arc<TwoSources>> = vec![
            two_sources(flip),
            two_sources(move |_| Some(substitute.clone())),
        ];
        for store in liars {
            let client = client(store.clone());
            let receipt = client
                .put(
                    Keying::Password(pw()),
                    PutOptions::file("x", spec),
                    body(&bytes),
                )
                .await
                .unwrap();
            let opened = client
                .open(receipt.id, Access::Password(pw()))
                .await
                .unwrap();
            assert_eq!(read(&client, &opened, None).await.unwrap(), bytes);
            let reported = store.reported.lock().unwrap().clone();
            assert!(
                reported.len() >= 3 && reported.iter().all(|s| *s == 0),
                "{reported:?}"
            );
        }
        // With the honest source down, the liar's bytes are refused, never handed out.
        let store = two_sources(flip);
        let client = client(store.clone());
        let receipt = client
            .put(
                Keying::Password(pw()),
                PutOptions::file("x", spec),
                body(&bytes),
            )
            .await
            .unwrap();
        store.honest_up.store(false, Ordering::Relaxed);
        let opened = client
            .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
            .await;
        let err = opened.unwrap_err();
        assert!(matches!(err, Error::BadObject { .. }), "{err:?}");
        assert!(err.to_string().contains("node-0"), "{err}");
    }
}

#[tokio::test]
async fn once_files_burn_and_deletes_remove_every_object() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let mut options = PutOptions::file("once", Redundancy::Replicas(3));
    options.once = true;
    let receipt = client
        .put(Keying::Password(pw()), options, body(&data(CHUNK + 1)))
        .await
        .unwrap();
    let opened = client
        .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
        .await
        .unwrap();
    assert!(
        opened.delete_key().is_some(),
        "a once file's reader may burn it"
    );
    read(&client, &opened, None).await.unwrap();
    client.burn(&opened).await.unwrap();
    assert!(store.is_empty());
    assert!(matches!(
        client.open(receipt.id, Access::Password(pw())).await,
        Err(Error::NotFound)
    ));

    let receipt = client
        .put(
            Keying::Password(pw()),
            PutOptions::file("kept", "rs:2+1".parse().unwrap()),
            body(&data(CHUNK * 2)),
        )
        .await
        .unwrap();
    let opened = client
        .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
        .await
        .unwrap();
    client.burn(&opened).await.unwrap();
    assert!(!store.is_empty(), "burn leaves other files alone");
    assert!(
        matches!(client.delete_opened(&opened).await, Err(Error::Decrypt)),
        "a link cannot delete"
    );
    assert!(matches!(
        client.delete(receipt.id, Password::new("nope")).await,
        Err(Error::Decrypt)
    ));
    client.delete(receipt.id, pw()).await.unwrap();
    assert!(store.is_empty());
}

#[tokio::test]
async fn expired_files_are_gone_and_failed_uploads_leave_nothing() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let mut options = PutOptions::file("old", Redundancy::Replicas(3));
    options.expires = 1;
    let refused = client
        .put(Keying::Password(pw()), options, body(b"x"))
        .await;
    assert!(matches!(refused, Err(Error::Store(_))), "{refused:?}");
    assert!(store.is_empty());
    // A body that fails after two chunks went out: everything it stored is deleted again.
    let mut pieces: Vec<Result<Bytes, String>> =
        (0..3).map(|_| Ok(Bytes::from(data(CHUNK)))).collect();
    pieces.push(Err("disk on fire".into()));
    let failed = client
        .put(
            Keying::Password(pw()),
            PutOptions::file("f", Redundancy::Replicas(3)),
            futures_util::stream::iter(pieces),
        )
        .await;
    assert!(
        matches!(&failed, Err(Error::Input(m)) if m.contains("disk on fire")),
        "{failed:?}"
    );
    assert!(store.is_empty(), "{} objects left", store.len());
}

#[tokio::test]
async fn collections_batch_small_files_and_stream_large_ones() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let key = client.derive(pw()).await.unwrap();
    let mut upload = client.collection_upload(key, 0, Redundancy::Replicas(3));
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("dir/sub{}/file-{i}.txt", i % 3), data(i * 97)))
        .chain([("big.bin".to_string(), data(2 * CHUNK + 7))])
        .collect();
    for (path, bytes) in &files {
        upload
            .add_bytes(path, crate::Plaintext::new(bytes.clone()))
            .await
            .unwrap();
    }
    let dup = upload
        .add_bytes("big.bin", crate::Plaintext::new(vec![1]))
        .await;
    assert!(matches!(dup, Err(Error::Input(_))));
    let escape = upload
        .add_bytes("../x", crate::Plaintext::new(vec![1]))
        .await;
    assert!(matches!(escape, Err(Error::Input(_))));
    let receipt = upload.finish("photos").await.unwrap();
    let opened = client
        .open(receipt.id, Access::Password(pw()))
        .await
        .unwrap();
    assert_eq!(opened.manifest().kind(), FileKind::Collection);
    assert!(matches!(
        client
            .open_kind(receipt.id, Access::Password(pw()), FileKind::File)
            .await,
        Err(Error::IsCollection)
    ));
    let listing = client.collection(&opened).await.unwrap();
    assert_eq!(listing.entries().len(), files.len());
    for (path, bytes) in &files {
        let entry = listing.find(path).unwrap();
        let file = client
            .open(entry.file, Access::ReadKey(entry.read.clone()))
            .await
            .unwrap();
        assert_eq!(&read(&client, &file, None).await.unwrap(), bytes, "{path}");
    }
    client.delete(receipt.id, pw()).await.unwrap();
    assert!(store.is_empty(), "{} objects left", store.len());
}

#[tokio::test]
async fn an_aborted_collection_deletes_its_files() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let key = client.derive(pw()).await.unwrap();
    let mut upload = client.collection_upload(key, 0, Redundancy::Replicas(3));
    for i in 0..300 {
        upload
            .add_bytes(&format!("f{i}"), crate::Plaintext::new(data(10)))
            .await
            .unwrap();
    }
    upload
        .add_bytes("large", crate::Plaintext::new(data(CHUNK * 2)))
        .await
        .unwrap();
    assert!(!store.is_empty(), "a batch went out");
    upload.abort().await;
    assert!(store.is_empty(), "{} objects left", store.len());
}

#[tokio::test]
async fn chunks_reach_the_store_while_the_body_is_still_awaited() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let pieces =
        futures_util::stream::iter((0..3).map(|_| Ok::<_, String>(Bytes::from(data(CHUNK)))))
            .chain(futures_util::stream::pending());
    let put = client.put(
        Keying::Password(pw()),
        PutOptions::file("slow", Redundancy::Replicas(3)),
        pieces,
    );
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        tokio::pin!(put);
        loop {
            tokio::select! {
                _ = &mut put => panic!("a pending body cannot end"),
                () = tokio::time::sleep(std::time::Duration::from_millis(10)) => {
                    if store.len() >= 2 {
                        return;
                    }
                }
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "the two full chunks were never stored");
}

#[tokio::test]
async fn a_read_answers_none_again_after_its_end() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let receipt = client
        .put(
            Keying::Password(pw()),
            PutOptions::file("f", Redundancy::Replicas(3)),
            body(b"abc"),
        )
        .await
        .unwrap();
    let opened = client
        .open(receipt.id, Access::ReadKey(receipt.read_key.clone()))
        .await
        .unwrap();
    let mut stream = std::pin::pin!(client.read(&opened, None).unwrap());
    assert_eq!(&stream.next().await.unwrap().unwrap()[..], b"abc");
    for _ in 0..3 {
        assert!(stream.next().await.is_none());
    }
}

#[test]
fn chunks_opened_by_their_tag_alone_refuse_every_substitution() {
    use crate::{FileOpener, FileSealer, ManifestInfo, chunk_count_for};
    let size = settings().chunk_size;
    let seal = |seed: u8| {
        let sealer = FileSealer::new(&pw(), KdfParams::insecure_test(), size).unwrap();
        let data = vec![seed; 2 * CHUNK];
        let count = chunk_count_for(data.len() as u64, size);
        let chunks: Vec<_> = data
            .chunks(CHUNK)
            .enumerate()
            .map(|(i, p)| {
                sealer
                    .seal_chunk(i as u64, i as u64 + 1 == count, p)
                    .unwrap()
            })
            .collect();
        let record = sealer
            .finish(&ManifestInfo {
                name: "x".into(),
                size: data.len() as u64,
                created: 0,
                kind: FileKind::File,
                chunks: chunks.iter().map(|c| c.id).collect(),
            })
            .unwrap();
        (
            FileOpener::open(&record.id, &record.bytes, &pw()).unwrap(),
            chunks,
        )
    };
    let (opener, chunks) = seal(1);
    let (_, other) = seal(2);
    assert_eq!(
        &opener
            .open_verified_chunk(0, chunks[0].bytes.clone())
            .unwrap()[..],
        &[1u8; CHUNK][..]
    );
    let mut flipped = chunks[0].bytes.clone();
    flipped[7] ^= 1;
    for (index, bytes) in [
        (0, flipped),
        (1, chunks[0].bytes.clone()),
        (0, chunks[1].bytes.clone()),
        (0, other[0].bytes.clone()),
    ] {
        assert!(
            opener.open_verified_chunk(index, bytes).is_err(),
            "index {index}"
        );
    }
}

#[tokio::test]
async fn a_collection_costs_one_key_derivation_to_read_and_to_delete() {
    let store = Arc::new(MemoryStore::new());
    let client = client(store.clone());
    let key = client.derive(pw()).await.unwrap();
    let mut upload = client.collection_upload(key, 0, Redundancy::Replicas(3));
    for i in 0..40 {
        upload
            .add_bytes(&format!("f{i}"), crate::Plaintext::new(data(100)))
            .await
            .unwrap();
    }
    let receipt = upload.finish("c").await.unwrap();
    assert_eq!(client.key_derivations(), 1, "the upload derives once");
    // Deleting opens the collection and each of its 40 files with the password: the first
    // open derives, the files (same salt) take the key from the cache.
    client.delete(receipt.id, pw()).await.unwrap();
    assert!(store.is_empty());
    assert_eq!(client.key_derivations(), 2);
    // A wrong password always pays its own derivation (no fast oracle).
    let _ = client
        .open([1; 32], Access::Password(Password::new("x")))
        .await;
    assert_eq!(client.key_derivations(), 2, "an unknown id derives nothing");
}
