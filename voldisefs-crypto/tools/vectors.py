#!/usr/bin/env python3
"""Rebuilds FORMAT.md's test vectors from the document alone, with Python's `cryptography`
package (>= 44, for Argon2id) and the `blake3` package (the content ids): an implementation
independent of the Rust code.

    python3 -m pip install 'cryptography>=44' blake3 && python3 voldisefs-crypto/tools/vectors.py

Prints `name = hex` lines in FORMAT.md's order and checks them against the document. The one
exception is the stripe's parity (section 8): without a Leopard-RS implementation the parity
payloads are taken from the document; their ids, the descriptor and everything after are
still recomputed from them.
"""
import functools
import hashlib
import pathlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
import hmac

from blake3 import blake3

PASSWORD = b"correct horse battery staple"
CREATED = 1700000000
VERSION = 4


def seq(start, n):
    return bytes(range(start, start + n))


def content_id(data):
    return blake3(data).digest()


def hkdf_extract(salt, ikm):
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def expand(prk, info):
    return HKDFExpand(hashes.SHA256(), 32, info).derive(prk)


@functools.lru_cache
def kek(salt):
    return Argon2id(salt=salt, length=32, iterations=3, lanes=1, memory_cost=65536).derive(PASSWORD)


def seal_file(name, kind, content, salt, file_nonce, dek, manifest_nonce, expires=0,
              redundancy=None, listed_id=None):
    """Seals a one-chunk file. `redundancy` is the manifest's 3-byte field (flag bit 1);
    `listed_id` the id the manifest lists (default: the ChunkId; a stripe id for rs:K+M)."""
    k = kek(salt)
    prk1 = hkdf_extract(file_nonce, k)
    wrap = expand(prk1, b"voldisefs v3 wrap key")
    commitment = expand(prk1, b"voldisefs v3 key commitment")
    prk2 = hkdf_extract(file_nonce, dek)
    read_key = expand(prk2, b"voldisefs v3 read key")
    delete_key = expand(prk2, b"voldisefs v2 delete key")
    prk3 = hkdf_extract(file_nonce, read_key)
    manifest_key = expand(prk3, b"voldisefs v1 manifest key")
    chunk_key = expand(prk3, b"voldisefs v1 chunk key")
    check = hashlib.sha256(b"voldisefs v2 delete check" + delete_key).digest()
    nonce = bytes(3) + struct.pack(">Q", 0) + b"\x01"
    aad = b"VDFS" + struct.pack(">H", VERSION) + file_nonce + struct.pack(">Q", 0) + b"\x01"
    trailer = struct.pack(">Q", expires) + check
    chunk = AESGCM(chunk_key).encrypt(nonce, content, aad) + trailer
    chunk_id = content_id(chunk)
    flags, extra = (0, b"") if redundancy is None else (0x02, redundancy)
    listed = chunk_id if listed_id is None else listed_id
    manifest = (struct.pack(">H", len(name)) + name + struct.pack(">QQ", len(content), CREATED)
                + bytes([kind, flags]) + extra + struct.pack(">I", 1) + listed)
    prefix = (b"VDFS" + struct.pack(">HBIII", VERSION, 1, 65536, 3, 1) + salt + file_nonce
              + bytes([16]) + commitment)
    header = prefix + AESGCM(wrap).encrypt(bytes(12), dek, prefix)
    record = (header + manifest_nonce
              + AESGCM(manifest_key).encrypt(manifest_nonce, manifest, header + trailer[:8])
              + trailer)
    return dict(kek=k, wrap_key=wrap, commitment=commitment, manifest_key=manifest_key,
                chunk_key=chunk_key, delete_key=delete_key, delete_check=check, read_key=read_key,
                chunk0_nonce=nonce, chunk0_aad=aad, chunk0=chunk, chunk0_id=chunk_id,
                manifest_plaintext=manifest, header=header, record=record,
                id=content_id(record))


def stripe(chunk, k, m, parity):
    """Section 8: the shard objects and descriptor of `chunk` (body || 40-byte trailer) as
    rs:k+m. `parity` holds the m parity payloads (Leopard-RS output, from the document)."""
    body, trailer = chunk[:-40], chunk[-40:]
    n = -(-len(body) // k)
    n += n & 1
    n = max(n, 16)  # at least an empty chunk's body: no object is shorter than 56 bytes
    data = [body[i * n:(i + 1) * n].ljust(n, b"\0") for i in range(k)]
    assert b"".join(data)[:len(body)] == body and len(parity) == m
    assert all(len(p) == n for p in parity), "parity payloads have the data payloads' length"
    values, ids = [], []
    for i, payload in enumerate(data + parity):
        ids.append(content_id(bytes([i]) + payload + trailer))
        values += [(f"shard{i}_payload", payload), (f"shard{i}_id", ids[-1])]
    descriptor = (b"VDST" + bytes([1, k, m, 0]) + struct.pack(">I", len(body)) + b"".join(ids)
                  + trailer)
    values += [("descriptor", descriptor), ("stripe_id", content_id(descriptor))]
    return values


def block(doc, fence):
    """The `name = hex` lines of the block opened by `fence`, as (name, hex) pairs."""
    text = doc.split(fence + "\n", 1)[1].split("```", 1)[0]
    return [tuple(x.strip() for x in line.split(" = ")) for line in text.splitlines()]


def main():
    doc = (pathlib.Path(__file__).parent.parent / "FORMAT.md").read_text()
    salt = seq(0x00, 16)
    plaintext = b"Hello, Voldisefs!\n"
    f = seal_file(b"hello.txt", 0, plaintext, salt, seq(0x10, 16), seq(0x20, 32), seq(0x40, 12))
    first = [("salt", salt), ("file_nonce", seq(0x10, 16)), ("dek", seq(0x20, 32)),
             ("manifest_nonce", seq(0x40, 12))]
    first += [(k, f[k]) for k in ("kek", "wrap_key", "commitment", "manifest_key", "chunk_key",
                                  "delete_key", "delete_check", "read_key")]
    first += [("chunk0_plaintext", plaintext)]
    first += [(k, f[k]) for k in ("chunk0_nonce", "chunk0_aad", "chunk0", "chunk0_id",
                                  "manifest_plaintext", "header", "record")]
    first += [("file_id", f["id"])]

    entries = sorted([("hello.txt".encode(), len(plaintext), f["id"], f["read_key"]),
                      ("sub dir/\u00e9t\u00e9.txt".encode(), 0, b"\xaa" * 32, b"\xbb" * 32)])
    listing = struct.pack(">I", len(entries)) + b"".join(
        struct.pack(">H", len(p)) + p + struct.pack(">Q", s) + i + k for p, s, i, k in entries)
    c = seal_file(b"photos", 1, listing, salt, seq(0x50, 16), seq(0x60, 32), seq(0x80, 12),
                  expires=1700086400)
    second = [("file_nonce", seq(0x50, 16)), ("dek", seq(0x60, 32)),
              ("manifest_nonce", seq(0x80, 12)), ("wrap_key", c["wrap_key"]),
              ("commitment", c["commitment"]), ("listing", listing), ("chunk0", c["chunk0"]),
              ("chunk0_id", c["chunk0_id"]), ("manifest_plaintext", c["manifest_plaintext"]),
              ("record", c["record"]), ("collection_id", c["id"])]

    # Section 8: section 6's chunk as rs:4+2, then section 6's file recording it.
    documented_stripe = dict(block(doc, "```stripe-vector"))
    parity = [bytes.fromhex(documented_stripe[f"shard{i}_payload"]) for i in (4, 5)]
    third = stripe(f["chunk0"], 4, 2, parity)
    stripe_id = third[-1][1]
    rs = seal_file(b"hello.txt", 0, plaintext, salt, seq(0x10, 16), seq(0x20, 32),
                   seq(0x90, 12), redundancy=bytes([1, 4, 2]), listed_id=stripe_id)
    assert rs["chunk0"] == f["chunk0"]
    fourth = [("manifest_nonce", seq(0x90, 12)), ("manifest_plaintext", rs["manifest_plaintext"]),
              ("record", rs["record"]), ("file_id", rs["id"])]

    ok = True
    for fence, values in (("```vector", first), ("```collection-vector", second),
                          ("```stripe-vector", third), ("```rs-file-vector", fourth)):
        documented = block(doc, fence)
        computed = [(k, v.hex()) for k, v in values]
        for k, v in computed:
            print(f"{k:<18} = {v}")
        print()
        ok &= documented == computed
    print("FORMAT.md matches" if ok else "FORMAT.md DIFFERS")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
