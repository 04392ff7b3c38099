//! Running work on keys off the async threads: [`scrubbed`] runs a closure on tokio's
//! blocking pool and wipes the stack it used after it. The replication layer opens fetched
//! objects this way; the transfer pipelines and the KDF gate use it too.

/// Runs `f` on tokio's blocking pool and wipes the stack it used after it (keys derived or
/// used there do not linger; see `voldisefs_crypto::scrub_stack`). The result travels boxed
/// (only a pointer crosses the frames above the wiped ones) and is unboxed by the caller.
pub(crate) async fn scrubbed<R, F>(f: F) -> Result<R, tokio::task::JoinError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    /// `f`'s result, boxed in a frame of its own below the scrub.
    #[inline(never)]
    fn boxed<R, F: FnOnce() -> R>(f: F) -> Box<R> {
        Box::new(f())
    }
    // Inline (the simulation), the stack is the simulation's own: nothing to wipe there.
    if crate::cpu::inline() {
        return Ok(f());
    }
    let result = tokio::task::spawn_blocking(move || {
        let result = boxed(f);
        voldisefs_crypto::scrub_stack();
        result
    })
    .await?;
    Ok(*result)
}
