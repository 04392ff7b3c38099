//! Hedged requests: ask the best holder, and when it has not answered within the hedging
//! delay (or failed), ask the next one too, so no single slow or hung holder stalls a read or
//! a write. Used for reads (one answer wanted) and writes (`replicas` answers wanted).

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::time::Instant;

use super::holder::{Holder, HolderError};
use crate::NodeError;

/// How one attempt ended badly.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// This holder could not help; try the next one.
    Next(HolderError),
    /// Stop everything: no holder can help (e.g. verified bytes that do not decrypt).
    Stop(NodeError),
}

impl From<HolderError> for AttemptError {
    fn from(e: HolderError) -> Self {
        AttemptError::Next(e)
    }
}

/// What a hedged run achieved.
#[derive(Debug)]
pub(crate) struct Hedged<T> {
    /// Holders that succeeded, with what they gave, in completion order.
    pub(crate) ok: Vec<(Holder, T)>,
    /// Holders that failed, with why.
    pub(crate) failed: Vec<(Holder, HolderError)>,
    /// Attempts started.
    pub(crate) started: usize,
}

/// Runs `attempt` on `candidates` in order until `want` of them succeeded or none is left.
///
/// `want` attempts start at once. Each failure starts the next candidate at once; whenever
/// `hedge` passes without any attempt finishing, one more candidate starts (at most `want`
/// extra attempts beyond those replacing failures), while the slow ones keep running and may
/// still win. Attempts still running when enough succeeded are dropped (cancelled).
pub(crate) async fn hedged<T, F, Fut>(
    candidates: Vec<Holder>,
    want: usize,
    hedge: Duration,
    mut attempt: F,
) -> Result<Hedged<T>, NodeError>
where
    F: FnMut(Holder) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let mut candidates = candidates.into_iter();
    let mut running = FuturesUnordered::new();
    let mut result = Hedged {
        ok: Vec::new(),
        failed: Vec::new(),
        started: 0,
    };
    let mut start = |running: &mut FuturesUnordered<_>, result: &mut Hedged<T>| -> bool {
        let Some(holder) = candidates.next() else {
            return false;
        };
        let work = attempt(holder);
        running.push(async move { (holder, work.await) });
        result.started += 1;
        true
    };
    for _ in 0..want {
        if !start(&mut running, &mut result) {
            break;
        }
    }
    let mut hedges_left = want;
    let mut next_hedge = Instant::now() + hedge;
    while result.ok.len() < want {
        let timer = tokio::time::sleep_until(next_hedge);
        tokio::select! {
            done = running.next() => {
                let Some((holder, outcome)) = done else { break };
                match outcome {
                    Ok(value) => result.ok.push((holder, value)),
                    Err(AttemptError::Next(e)) => {
                        result.failed.push((holder, e));
                        if start(&mut running, &mut result) {
                            next_hedge = Instant::now() + hedge;
                        }
                    }
                    Err(AttemptError::Stop(e)) => return Err(e),
                }
            }
            () = timer, if hedges_left > 0 && !running.is_empty() => {
                if start(&mut running, &mut result) {
                    hedges_left -= 1;
                    next_hedge = Instant::now() + hedge;
                } else {
                    hedges_left = 0;
                }
            }
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use voldisefs_proto::{NodeId, PeerInfo};

    fn holders(n: usize) -> Vec<Holder> {
        (0..n)
            .map(|i| {
                Holder::Remote(PeerInfo {
                    id: NodeId::random(),
                    addr: ([127, 0, 0, 1], 1000 + i as u16).into(),
                })
            })
            .collect()
    }

    /// Each holder's behaviour: answer after a delay, or never.
    fn behaviour(
        hs: &[Holder],
        plan: Vec<Option<(u64, bool)>>,
    ) -> impl FnMut(Holder) -> std::pin::Pin<Box<dyn Future<Output = Result<usize, AttemptError>>>>
    {
        let hs = hs.to_vec();
        move |h| {
            let i = hs.iter().position(|x| *x == h).unwrap();
            let step = plan[i];
            Box::pin(async move {
                match step {
                    None => std::future::pending().await,
                    Some((ms, ok)) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        if ok {
                            Ok(i)
                        } else {
                            Err(AttemptError::Next(HolderError::NotFound))
                        }
                    }
                }
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_holder_costs_one_hedge_delay() {
        let hs = holders(3);
        let start = Instant::now();
        let run = behaviour(&hs, vec![None, Some((5, true)), Some((5, true))]);
        let r = hedged(hs.clone(), 1, Duration::from_millis(100), run)
            .await
            .unwrap();
        assert_eq!(r.ok.len(), 1);
        assert_eq!(r.ok[0].1, 1, "the second holder answered");
        assert_eq!(start.elapsed(), Duration::from_millis(105));
        assert_eq!(r.started, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_move_on_at_once() {
        let hs = holders(3);
        let start = Instant::now();
        let run = behaviour(
            &hs,
            vec![Some((1, false)), Some((1, false)), Some((1, true))],
        );
        let r = hedged(hs.clone(), 1, Duration::from_secs(10), run)
            .await
            .unwrap();
        assert_eq!(r.ok[0].1, 2);
        assert_eq!(r.failed.len(), 2);
        assert_eq!(start.elapsed(), Duration::from_millis(3));
    }

    #[tokio::test(start_paused = true)]
    async fn writes_replace_a_hung_holder_and_stop_at_want() {
        let hs = holders(5);
        let run = behaviour(
            &hs,
            vec![
                Some((1, true)),
                None,
                Some((1, true)),
                Some((1, true)),
                Some((1, true)),
            ],
        );
        let r = hedged(hs.clone(), 3, Duration::from_millis(50), run)
            .await
            .unwrap();
        let mut won: Vec<usize> = r.ok.iter().map(|(_, i)| *i).collect();
        won.sort_unstable();
        assert_eq!(won, vec![0, 2, 3]);
        assert_eq!(r.started, 4, "one hedge replaced the hung holder");
    }

    #[tokio::test(start_paused = true)]
    async fn runs_out_of_candidates_without_hanging_on_failures() {
        let hs = holders(2);
        let run = behaviour(&hs, vec![Some((1, false)), Some((1, false))]);
        let r = hedged(hs.clone(), 1, Duration::from_millis(50), run)
            .await
            .unwrap();
        assert!(r.ok.is_empty());
        assert_eq!(r.failed.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_everything() {
        let hs = holders(2);
        let r = hedged(hs, 1, Duration::from_millis(50), |_| async {
            Err::<(), _>(AttemptError::Stop(NodeError::WrongPassword))
        })
        .await;
        assert!(matches!(r, Err(NodeError::WrongPassword)));
    }
}
