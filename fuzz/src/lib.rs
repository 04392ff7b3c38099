//! Input formats shared by the fuzz targets (`fuzz_targets/`) and the seed-corpus generator
//! (`gen_corpus.rs`), so the generator writes exactly what the targets read.
//!
//! Every format is a few plain bytes of parameters followed by the data, parsed without ever
//! failing (missing bytes read as zero or end the list), so any byte string is a valid input.

/// The password every `file_opener` record is sealed and opened with.
pub const PASSWORD: &str = "fuzz password";

/// Network key (hex) of the keyed server in `noise_framing`.
pub const NETWORK_KEY_HEX: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Prologue of voldisefs-net's Noise handshake (`PROLOGUE` in voldisefs-net/src/noise.rs, not
/// public: keep in step with it; a mismatch makes every handshake of `noise_framing` fail,
/// which the target reports loudly).
pub const NOISE_PROLOGUE: &[u8] = b"voldisefs peer link v1";

/// Plaintext bytes per Noise transport message (65 535 minus the 16-byte tag).
pub const NOISE_MAX_PLAIN: usize = 65_535 - 16;

/// A cursor that never fails: reads past the end give zeros / empty slices.
#[derive(Debug)]
pub struct Cursor<'a>(pub &'a [u8]);

impl<'a> Cursor<'a> {
    /// Next byte, 0 at the end.
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// Next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }

    /// Next big-endian u16 (missing bytes are zero).
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Next big-endian u32 (missing bytes are zero).
    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Next big-endian u64 (missing bytes are zero).
    pub fn u64(&mut self) -> u64 {
        (u64::from(self.u32()) << 32) | u64::from(self.u32())
    }

    /// Next `N` bytes as an array (missing bytes are zero).
    pub fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let b = self.bytes(N);
        out[..b.len()].copy_from_slice(b);
        out
    }

    /// Whether everything was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rest.
    pub fn rest(&mut self) -> &'a [u8] {
        self.bytes(self.0.len())
    }
}

// ---- frame_codec --------------------------------------------------------------------------------

/// Frame caps `frame_codec` picks from with its first input byte (index modulo the length):
/// the default, tiny ones, both sides of the 64 KiB "exact buffer" threshold, and values the
/// codec clamps to `u32::MAX`.
pub const FRAME_CAPS: [usize; 11] = [
    voldisefs_proto::MAX_FRAME_LEN,
    0,
    4,
    8,
    100,
    1000,
    65_535,
    65_540,
    200_000,
    u32::MAX as usize,
    usize::MAX,
];

/// `frame_codec` input: `[cap index][split seed][stream...]`. Split seed 0: the whole stream
/// in one read; otherwise reads of 1..=seed bytes.
pub fn frame_codec_input(cap_index: u8, split_seed: u8, stream: &[u8]) -> Vec<u8> {
    let mut out = vec![cap_index, split_seed];
    out.extend_from_slice(stream);
    out
}

/// Cuts `stream` into reads as `frame_codec` does: all at once for seed 0, else pieces of
/// 1..=seed bytes from a small deterministic generator.
pub fn split_reads(stream: &[u8], seed: u8) -> Vec<&[u8]> {
    if seed == 0 {
        return vec![stream];
    }
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % u32::from(seed)) as usize + 1;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

// ---- noise_framing ------------------------------------------------------------------------------

/// What `noise_framing` does with its input, from the low two bits of the first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseMode {
    /// No handshake: the rest goes to the server as raw bytes (unauthenticated attacker).
    Raw = 0,
    /// A valid first handshake message (`-> e`), the server's answer read, then the rest raw
    /// (a forged third message: the Noise handshake parser sees the fuzzer's bytes).
    AfterFirstMessage = 1,
    /// Full handshake with the network key, then the operations (no `hello` sent for you).
    Transport = 2,
    /// Full handshake, a valid `hello` for the harness's key, then the operations.
    TransportAfterHello = 3,
}

impl NoiseMode {
    /// The mode of a first byte.
    pub fn from_byte(b: u8) -> Self {
        match b & 3 {
            0 => NoiseMode::Raw,
            1 => NoiseMode::AfterFirstMessage,
            2 => NoiseMode::Transport,
            _ => NoiseMode::TransportAfterHello,
        }
    }
}

/// One step after the handshake in `noise_framing`: `[op][len: u16 BE][data]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoiseOp {
    /// Encrypt `data` (at most [`NOISE_MAX_PLAIN`] bytes) as the next transport message.
    Encrypt = 0,
    /// Write `data` to the socket as is (forged lengths, garbage ciphertext).
    Raw = 1,
    /// Encrypt `data[1..]`, then flip the ciphertext byte at `data[0]` (modulo its length).
    Tamper = 2,
    /// Skip one nonce (a dropped or reordered message), then encrypt `data`.
    SkipNonce = 3,
}

impl NoiseOp {
    /// The op of a byte (modulo 4).
    pub fn from_byte(b: u8) -> Self {
        match b & 3 {
            0 => NoiseOp::Encrypt,
            1 => NoiseOp::Raw,
            2 => NoiseOp::Tamper,
            _ => NoiseOp::SkipNonce,
        }
    }
}

/// Appends one operation to a `noise_framing` input.
pub fn push_noise_op(out: &mut Vec<u8>, op: NoiseOp, data: &[u8]) {
    let data = &data[..data.len().min(usize::from(u16::MAX))];
    out.push(op as u8);
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// Parses the operations of a `noise_framing` input (a short last one is kept as is).
pub fn parse_noise_ops(mut c: Cursor<'_>) -> Vec<(NoiseOp, &[u8])> {
    let mut ops = Vec::new();
    while !c.is_empty() {
        let op = NoiseOp::from_byte(c.u8());
        let len = usize::from(c.u16());
        ops.push((op, c.bytes(len)));
    }
    ops
}

// ---- file_opener --------------------------------------------------------------------------------

/// `file_opener` mode 0: `[0][record_len: u32 BE][record][chunk entries]`, each chunk entry
/// `[index: u64 BE][len: u32 BE][bytes]`. The record is opened under its own content id.
pub fn opener_record_input(record: &[u8], chunks: &[(u64, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&(record.len() as u32).to_be_bytes());
    out.extend_from_slice(record);
    for (index, bytes) in chunks {
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

/// `file_opener` mode 1: seal a file built from these parameters with the public API, open
/// it and every chunk back, and check that tampering is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealParams {
    /// Chunk size selector (see [`SealParams::chunk_log2`]).
    pub log2: u8,
    /// File size (capped by the target to keep an execution fast).
    pub size: u32,
    /// Creation time.
    pub created: u64,
    /// Salt, file nonce, data key and manifest nonce (16 + 16 + 32 + 12 bytes).
    pub randomness: [u8; 76],
    /// File name (the target uses it only if it is valid UTF-8, else its lossy form).
    pub name: Vec<u8>,
    /// Seed of the file's bytes.
    pub data_seed: u8,
    /// Which byte of which sealed output the target flips for the tamper check.
    pub tamper: u32,
}

impl Default for SealParams {
    fn default() -> Self {
        SealParams {
            log2: 0,
            size: 0,
            created: 0,
            randomness: [0; 76],
            name: Vec::new(),
            data_seed: 0,
            tamper: 0,
        }
    }
}

impl SealParams {
    /// Chunk size log2 actually used: 16 or 17 (small chunks keep executions fast), 24 rarely.
    pub fn chunk_log2(&self) -> u8 {
        match self.log2 % 8 {
            7 => 24,
            n => 16 + (n & 1),
        }
    }

    /// Encodes as a `file_opener` input: `[1][log2][size u32][created u64][randomness 76]
    /// [tamper u32][data_seed][name...]`.
    pub fn to_input(&self) -> Vec<u8> {
        let mut out = vec![1u8, self.log2];
        out.extend_from_slice(&self.size.to_be_bytes());
        out.extend_from_slice(&self.created.to_be_bytes());
        out.extend_from_slice(&self.randomness);
        out.extend_from_slice(&self.tamper.to_be_bytes());
        out.push(self.data_seed);
        out.extend_from_slice(&self.name);
        out
    }

    /// Decodes the part after the mode byte.
    pub fn parse(mut c: Cursor<'_>) -> Self {
        SealParams {
            log2: c.u8(),
            size: c.u32(),
            created: c.u64(),
            randomness: c.array(),
            tamper: c.u32(),
            data_seed: c.u8(),
            name: c.rest().to_vec(),
        }
    }

    /// The fixed randomness for the sealer.
    pub fn fixed(&self) -> voldisefs_crypto::FixedRandomness {
        let r = &self.randomness;
        let mut f = voldisefs_crypto::FixedRandomness {
            salt: [0; 16],
            file_nonce: [0; 16],
            dek: [0; 32],
            manifest_nonce: [0; 12],
        };
        f.salt.copy_from_slice(&r[..16]);
        f.file_nonce.copy_from_slice(&r[16..32]);
        f.dek.copy_from_slice(&r[32..64]);
        f.manifest_nonce.copy_from_slice(&r[64..76]);
        f
    }
}

/// The file bytes of a `file_opener` mode-1 input: a cheap deterministic pattern.
pub fn file_bytes(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}
