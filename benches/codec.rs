//! Frame codec throughput: encoding and decoding a `put_chunk` frame carrying a 1 MiB body.
//!
//! Run with `cargo bench --bench codec`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use tokio_util::codec::{Decoder, Encoder};
use voldisefs::proto::{ChunkId, Frame, FrameCodec, Message};

fn codec(c: &mut Criterion) {
    let body = Bytes::from(vec![0xa5u8; 1 << 20]);
    let chunk = ChunkId::digest(&body);
    let frame = Frame::with_body(42, Message::PutChunk { chunk }, body.clone());
    let mut codec = FrameCodec::new();
    let mut wire = BytesMut::new();
    codec.encode(frame.clone(), &mut wire).unwrap();
    let wire = wire.freeze();

    let mut g = c.benchmark_group("codec_1MiB_chunk_frame");
    g.throughput(Throughput::Bytes(wire.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = BytesMut::with_capacity(wire.len());
        b.iter(|| {
            buf.clear();
            codec.encode(black_box(frame.clone()), &mut buf).unwrap();
        })
    });
    g.bench_function("decode", |b| {
        b.iter_batched(
            || BytesMut::from(&wire[..]),
            |mut buf| black_box(codec.decode(&mut buf).unwrap().unwrap()),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
