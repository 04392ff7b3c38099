//! Where the pipelines run their CPU work (Argon2id, sealing, opening, hashing, Reed-Solomon):
//! never on the async reactor that drives the store's I/O.
//!
//! [`Offload`] is one method: run a job somewhere. [`Threads`] runs each on a thread of a
//! small pool sized to the machine's cores (the default for native programs); a tokio program
//! can hand the jobs to `spawn_blocking` instead; [`Inline`] runs them where they are called
//! (for single-threaded targets such as wasm32, and for tests).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Error, Result};

/// A job handed to an [`Offload`].
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Runs CPU-heavy jobs off the async reactor.
pub trait Offload: Send + Sync {
    /// Runs `job`, now or soon, on some thread.
    fn spawn(&self, job: Job);
}

/// Runs every job where it is spawned: no threads (wasm32, tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

impl Offload for Inline {
    fn spawn(&self, job: Job) {
        job();
    }
}

/// A fixed pool of worker threads (one per core by default) fed from one queue. Jobs beyond the
/// workers wait in the queue; the pipelines bound how many they hand over (chunks in flight).
/// After every job a worker wipes the stack the job used ([`scrub_stack`](crate::scrub_stack)),
/// so keys derived and used there do not linger. The threads end when the last handle is
/// dropped.
#[derive(Clone)]
pub struct Threads {
    queue: Arc<Mutex<mpsc::Sender<Job>>>,
    workers: usize,
}

impl std::fmt::Debug for Threads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threads")
            .field("workers", &self.workers)
            .finish()
    }
}

impl Threads {
    /// A pool of `workers` threads (at least 1).
    pub fn new(workers: usize) -> Result<Self> {
        let workers = workers.max(1);
        let (send, receive) = mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        for i in 0..workers {
            let receive = receive.clone();
            std::thread::Builder::new()
                .name(format!("voldisefs-seal-{i}"))
                .spawn(move || {
                    loop {
                        let job = receive
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => {
                                job();
                                // The job's frames (chunk keys, AES key tables) lie below
                                // this one: wiped before the next job, not left to linger.
                                crate::scrub_stack();
                            }
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|_| Error::Internal("cannot start a worker thread"))?;
        }
        Ok(Self {
            queue: Arc::new(Mutex::new(send)),
            workers,
        })
    }

    /// A pool with one thread per core this process may use.
    pub fn per_core() -> Result<Self> {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How many threads it has.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

impl Offload for Threads {
    fn spawn(&self, job: Job) {
        let sent = self
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(job);
        // The workers only stop once every sender is gone, so a send cannot fail while `self`
        // lives; if it ever did, run the job here rather than lose it.
        if let Err(mpsc::SendError(job)) = sent {
            job();
        }
    }
}

/// Runs `work` on `offload` and waits for its result without blocking the caller's thread.
pub async fn run<R, F>(offload: &dyn Offload, work: F) -> Result<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (send, receive) = futures_channel::oneshot::channel();
    offload.spawn(Box::new(move || {
        let _ = send.send(work());
    }));
    receive
        .await
        .map_err(|_| Error::Internal("an offloaded job was dropped"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn futures_block<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn every_offload_runs_the_job_and_returns_its_result() {
        let pool = Threads::new(2).unwrap();
        let on_pool = futures_block(run(&pool, || {
            std::thread::current().name().map(str::to_string)
        }))
        .unwrap();
        assert!(on_pool.is_some_and(|n| n.starts_with("voldisefs-seal-")));
        let inline = futures_block(run(&Inline, || 6 * 7)).unwrap();
        assert_eq!(inline, 42);
    }
}
