//! The async runtime a node runs on.

/// A multi-threaded tokio runtime builder (all drivers enabled) whose workers wipe the stack
/// their tasks used each time they go idle ([`voldisefs_crypto::scrub_stack_deep`]): keys and
/// plaintext that passed through a request's async frames do not linger in the thread stacks.
/// (CPU work on keys runs on the blocking pool, whose jobs wipe their stacks as they end.)
///
/// ```
/// let runtime = voldisefs_node::runtime_builder().build().unwrap();
/// assert_eq!(runtime.block_on(async { 6 * 7 }), 42);
/// ```
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder
        .enable_all()
        .on_thread_park(voldisefs_crypto::scrub_stack_deep);
    builder
}
