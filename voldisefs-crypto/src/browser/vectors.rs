//! FORMAT.md's vectors, checked in the browser by the WebAssembly the page runs.

use wasm_bindgen::prelude::*;

use super::js;
use crate::{FileKind, FileOpener, Password};

const FORMAT_MD: &str = include_str!("../../FORMAT.md");
/// The file vector's password and plaintext (FORMAT.md section 6).
const PASSWORD: &str = "correct horse battery staple";
const PLAINTEXT: &[u8] = b"Hello, Voldisefs!\n";

/// A value of the ```vector block of FORMAT.md, as bytes.
fn vector(name: &str) -> Result<Vec<u8>, JsError> {
    vector_in("```vector", name)
}

/// A value of the block opened by `fence` in FORMAT.md, as bytes.
fn vector_in(fence: &str, name: &str) -> Result<Vec<u8>, JsError> {
    let block = FORMAT_MD
        .split(fence)
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .ok_or_else(|| js(format!("FORMAT.md has no {fence} block")))?;
    let hex = block
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == name).then(|| value.trim())
        })
        .ok_or_else(|| js(format!("FORMAT.md's {fence} has no {name}")))?;
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<_, _>>()
        .map_err(|_| js(format!("FORMAT.md's {name} is not hex")))
}

fn id_in(fence: &str, name: &str) -> Result<[u8; 32], JsError> {
    vector_in(fence, name)?
        .try_into()
        .map_err(|_| js(format!("{name} is not 32 bytes")))
}

/// Checks FORMAT.md's vectors in this build (two Argon2id runs at the vectors' 64 MiB):
/// the file (section 6) opens with its password and its chunk gives the plaintext; the
/// collection (section 7) opens and lists the file; the stripe (section 8) is encoded
/// byte for byte and any four of its six shards give the chunk back; the erasure-coded
/// file opens with the file's read key and its joined stripe gives the plaintext.
#[wasm_bindgen]
pub fn check_format_vector() -> Result<(), JsError> {
    let id = id_in("```vector", "file_id")?;
    let opener = FileOpener::open(&id, &vector("record")?, &Password::new(PASSWORD)).map_err(js)?;
    let chunk0 = vector("chunk0")?;
    let plaintext = opener.open_chunk(0, chunk0.clone()).map_err(js)?;
    if &*plaintext != PLAINTEXT || opener.manifest().name() != "hello.txt" {
        return Err(js("the file vector opened to something else"));
    }

    const COLLECTION: &str = "```collection-vector";
    let collection = FileOpener::open(
        &id_in(COLLECTION, "collection_id")?,
        &vector_in(COLLECTION, "record")?,
        &Password::new(PASSWORD),
    )
    .map_err(js)?;
    let listing = collection
        .open_chunk(0, vector_in(COLLECTION, "chunk0")?)
        .map_err(js)?;
    if *listing != vector_in(COLLECTION, "listing")?[..] {
        return Err(js("the collection vector opened to another listing"));
    }
    let listing = crate::Collection::decode(&listing).map_err(js)?;
    let names: Vec<&str> = listing.entries().iter().map(|e| e.path.as_str()).collect();
    if collection.manifest().kind() != FileKind::Collection
        || names != ["hello.txt", "sub dir/\u{e9}t\u{e9}.txt"]
        || listing.entries()[0].file != id
    {
        return Err(js("the collection vector lists something else"));
    }

    const STRIPE: &str = "```stripe-vector";
    let stripe = crate::Stripe::encode(4, 2, &chunk0).map_err(js)?;
    if stripe.id != id_in(STRIPE, "stripe_id")?
        || stripe.descriptor != vector_in(STRIPE, "descriptor")?
    {
        return Err(js("the stripe vector encodes to something else"));
    }
    let parsed = crate::Stripe::parse(&stripe.descriptor).map_err(js)?;
    let four: Vec<Option<&Vec<u8>>> = stripe
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| (i != 1 && i != 4).then_some(s))
        .collect();
    if parsed.join(&four).map_err(js)? != chunk0 {
        return Err(js(
            "four shards of the stripe vector do not give the chunk back",
        ));
    }

    const RS_FILE: &str = "```rs-file-vector";
    let striped = FileOpener::open_with_read_key(
        &id_in(RS_FILE, "file_id")?,
        &vector_in(RS_FILE, "record")?,
        opener.read_key(),
    )
    .map_err(js)?;
    if striped.manifest().chunks() != [stripe.id]
        || &*striped.open_verified_chunk(0, chunk0).map_err(js)? != PLAINTEXT
    {
        return Err(js("the erasure-coded file vector opened to something else"));
    }
    Ok(())
}
