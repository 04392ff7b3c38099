//! The freeze drill switch (see [`Network::set_frozen`](crate::Network::set_frozen)): while
//! frozen, the node behaves like a stopped process whose sockets stay open.

use std::time::Duration;

use tokio::sync::watch;

use crate::NetError;

/// Owner side of the switch; lives in the network's shared state.
#[derive(Debug)]
pub(crate) struct Freeze(watch::Sender<bool>);

impl Freeze {
    /// A switch that starts thawed.
    pub(crate) fn new() -> Self {
        Self(watch::Sender::new(false))
    }

    /// Freezes (`true`) or thaws (`false`) the node; wakes every waiter.
    pub(crate) fn set(&self, frozen: bool) {
        self.0.send_replace(frozen);
    }

    /// Whether the node is frozen now.
    pub(crate) fn is_frozen(&self) -> bool {
        *self.0.borrow()
    }

    /// A handle that tasks await on.
    pub(crate) fn watch(&self) -> FreezeWatch {
        FreezeWatch(self.0.subscribe())
    }
}

/// Waiting side of the switch, one per task.
#[derive(Debug, Clone)]
pub(crate) struct FreezeWatch(watch::Receiver<bool>);

impl FreezeWatch {
    /// Returns at once if the node is not frozen, otherwise when it is thawed. Once the
    /// switch is gone (the network is dropped) nothing is frozen any more.
    pub(crate) async fn thawed(&mut self) {
        // An error means the switch is gone: treat as thawed.
        let _ = self.0.wait_for(|frozen| !*frozen).await;
    }

    /// Returns when the node is frozen (at once if it is). Never returns once the switch is
    /// gone, so it can sit in a `select!` without spinning.
    pub(crate) async fn frozen(&mut self) {
        if self.0.wait_for(|frozen| *frozen).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Waits until the node is not frozen, for at most `limit`; [`NetError::Frozen`] if it still is.
pub(crate) async fn wait_thawed(mut freeze: FreezeWatch, limit: Duration) -> Result<(), NetError> {
    tokio::time::timeout(limit, freeze.thawed())
        .await
        .map_err(|_| NetError::Frozen)
}
