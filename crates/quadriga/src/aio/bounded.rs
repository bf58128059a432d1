//! [`bounded`]: run a stream or iterator of futures at most `limit` at a time,
//! with a fixed limit or one the shared concurrency controller adjusts.

use std::collections::HashMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use pin_project_lite::pin_project;

use super::group::TaskGroup;
use crate::adapt::{ConcurrencyController, JobTicket, LimitDecision};
use crate::error::TaskError;

/// How many futures [`bounded`] keeps running at once.
///
/// ```
/// use quadriga::aio::Limit;
///
/// assert_eq!(Limit::from(8), Limit::Fixed(8));
/// assert_eq!(Limit::auto(), Limit::Auto { max: 1024 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Limit {
    /// At most this many (0 counts as 1).
    Fixed(usize),
    /// Chosen by measurement, between 1 and `max`, by the same
    /// [`ConcurrencyController`] as `quadriga run -j auto`: it starts at the
    /// runtime's worker-thread count and climbs while throughput (completions
    /// per second) keeps rising with concurrency, then settles at the knee.
    ///
    /// What it is fed: each future's wall time (spawn to end) and, in place of
    /// CPU time, which is not observable per future (a runtime thread runs
    /// many), the wall time spent *inside its polls*: the time a runtime
    /// thread was busy with it. Work it awaits elsewhere (a pool, a server)
    /// counts as waiting. So futures that compute in their polls hold near
    /// one per runtime thread; futures that wait climb until throughput stops
    /// improving. On an oversubscribed machine a poll's wall time includes
    /// time its thread was preempted, which reads as CPU-bound: the right
    /// answer there, since more concurrency cannot help.
    Auto {
        /// The most futures it may run at once.
        max: usize,
    },
}

impl Limit {
    /// `Auto` with a maximum of 1024 futures at once.
    ///
    /// ```
    /// assert!(matches!(quadriga::aio::Limit::auto(), quadriga::aio::Limit::Auto { .. }));
    /// ```
    pub const fn auto() -> Self {
        Limit::Auto { max: 1024 }
    }
}

impl From<usize> for Limit {
    fn from(n: usize) -> Self {
        Limit::Fixed(n)
    }
}

/// A [`Stream`] over an iterator (every item is ready at once), the input
/// [`bounded`] makes of an iterator of futures.
///
/// ```
/// let s = quadriga::aio::FromIter::new([1, 2, 3].into_iter());
/// # let _ = s;
/// ```
#[derive(Clone, Debug)]
pub struct FromIter<I> {
    iter: I,
}

impl<I> FromIter<I> {
    /// A stream of `iter`'s items.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::{FromIter, bounded_stream};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let futures = FromIter::new((0..3).map(|i| async move { Ok::<_, TaskError>(i) }));
    /// let out = bounded_stream(futures, 2).gather().await;
    /// assert_eq!(out.len(), 3);
    /// # }
    /// ```
    pub fn new(iter: I) -> Self {
        Self { iter }
    }
}

// The iterator is never pinned (its items are moved out), so `FromIter` is
// `Unpin` even over items that are not, such as `async` blocks.
impl<I> Unpin for FromIter<I> {}

impl<I: Iterator> Stream for FromIter<I> {
    type Item = I::Item;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<I::Item>> {
        Poll::Ready(self.get_mut().iter.next())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.iter.size_hint()
    }
}

/// Runs the futures of `futures` concurrently, at most `limit` at a time (each
/// as a tokio task), and yields `(index, outcome)` as they end. Lazy: a future
/// is taken from the iterator only when a slot is free, so an endless iterator
/// is fine.
///
/// Collect with [`Bounded::gather`] (input order) or
/// [`Bounded::try_gather`], or take outcomes one by one with
/// [`Bounded::next`] (or as a [`Stream`]). Dropping the `Bounded` cancels the
/// futures still running.
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::{Limit, bounded};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pages = (0..20_u64).map(|i| async move {
///     tokio::time::sleep(Duration::from_millis(5)).await;
///     Ok::<_, TaskError>(i * 100)
/// });
/// let sizes = bounded(pages, Limit::Fixed(4)).gather().await;
/// assert_eq!(sizes.len(), 20);
/// assert_eq!(sizes[7].as_ref().unwrap(), &700);
/// # }
/// ```
pub fn bounded<I, F, T>(futures: I, limit: impl Into<Limit>) -> Bounded<FromIter<I::IntoIter>, T>
where
    I: IntoIterator<Item = F>,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    Bounded::new(FromIter::new(futures.into_iter()), limit.into())
}

/// [`bounded`] over a [`Stream`] of futures: a future is pulled from `stream`
/// only when a slot is free. Pin a stream that is not `Unpin` first
/// (`Box::pin(stream)`).
///
/// ```
/// use quadriga::TaskError;
/// use quadriga::aio::{FromIter, Limit, bounded_stream};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let stream = FromIter::new((1..=3_u32).map(|i| async move { Ok::<_, TaskError>(i) }));
/// let mut running = bounded_stream(stream, Limit::Fixed(2));
/// let mut total = 0;
/// while let Some((_index, outcome)) = running.next().await {
///     total += outcome.unwrap();
/// }
/// assert_eq!(total, 6);
/// # }
/// ```
pub fn bounded_stream<S, F, T>(stream: S, limit: impl Into<Limit>) -> Bounded<S, T>
where
    S: Stream<Item = F> + Unpin,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    Bounded::new(stream, limit.into())
}

/// What a future reports to its `Bounded`: its outcome, the time spent in
/// its polls, and when it ended.
struct Measured<T> {
    result: Result<T, TaskError>,
    busy: Duration,
    ended: Instant,
}

pin_project! {
    /// Times a future's polls. Always `Ok`, so that the outcome and its timing
    /// travel together; the group's own `Err` means panicked or cancelled.
    struct Timed<F> {
        #[pin]
        future: F,
        busy: Duration,
    }
}

impl<F, T> Future for Timed<F>
where
    F: Future<Output = Result<T, TaskError>>,
{
    type Output = Result<Measured<T>, TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let started = Instant::now();
        let polled = this.future.poll(cx);
        let ended = Instant::now();
        *this.busy += ended.saturating_duration_since(started);
        polled.map(|result| {
            Ok(Measured {
                result,
                busy: *this.busy,
                ended,
            })
        })
    }
}

/// The limit in force: fixed, or measured.
enum Limiter {
    Fixed(usize),
    Auto(Box<Auto>),
}

/// The controller of a [`Limit::Auto`] and the tickets of the futures it is
/// timing.
struct Auto {
    max: usize,
    /// Made at the first poll, from the runtime's thread count.
    controller: Option<ConcurrencyController>,
    tickets: HashMap<usize, JobTicket>,
    decisions: Vec<LimitDecision>,
}

/// The most decisions a `Bounded` keeps (the oldest go first).
const KEEP_DECISIONS: usize = 256;

/// Futures running at most `limit` at a time; made by [`bounded`] and
/// [`bounded_stream`].
///
/// It is a [`Stream`] of `(input index, outcome)` in completion order; the
/// inherent [`next`](Self::next) saves importing a stream extension trait.
///
/// ```
/// use std::time::Duration;
/// use quadriga::TaskError;
/// use quadriga::aio::{Limit, bounded};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let naps = [30_u64, 10, 20].map(|ms| async move {
///     tokio::time::sleep(Duration::from_millis(ms)).await;
///     Ok::<_, TaskError>(ms)
/// });
/// let mut running = bounded(naps, Limit::Fixed(3));
/// let mut order = Vec::new();
/// while let Some((index, outcome)) = running.next().await {
///     order.push((index, outcome.unwrap()));
/// }
/// assert_eq!(order, [(1, 10), (2, 20), (0, 30)]);
/// # }
/// ```
#[must_use = "a stream does nothing unless polled, and dropping it cancels the futures still running"]
pub struct Bounded<S, T> {
    /// `None` once exhausted.
    source: Option<S>,
    group: TaskGroup<Measured<T>>,
    limiter: Limiter,
}

impl<S, F, T> Bounded<S, T>
where
    S: Stream<Item = F> + Unpin,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    fn new(source: S, limit: Limit) -> Self {
        let limiter = match limit {
            Limit::Fixed(n) => Limiter::Fixed(n.max(1)),
            Limit::Auto { max } => Limiter::Auto(Box::new(Auto {
                max: max.max(1),
                controller: None,
                tickets: HashMap::new(),
                decisions: Vec::new(),
            })),
        };
        Self {
            source: Some(source),
            group: TaskGroup::new().cancel_on_failure(false),
            limiter,
        }
    }

    /// The limit now: the fixed one, or the controller's latest choice (before
    /// the first poll, the runtime's thread count is not known yet: 1).
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::{Limit, bounded};
    ///
    /// let running = bounded(Vec::<std::future::Ready<Result<(), TaskError>>>::new(), Limit::Fixed(3));
    /// assert_eq!(running.limit(), 3);
    /// ```
    pub fn limit(&self) -> usize {
        match &self.limiter {
            Limiter::Fixed(n) => *n,
            Limiter::Auto(auto) => auto
                .controller
                .as_ref()
                .map_or(1, ConcurrencyController::limit),
        }
    }

    /// How many futures are running (or ended and not yet yielded).
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::{Limit, bounded};
    ///
    /// let running = bounded(Vec::<std::future::Ready<Result<(), TaskError>>>::new(), Limit::Fixed(3));
    /// assert_eq!(running.in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.group.len()
    }

    /// With [`Limit::Auto`], the controller's decisions so far, oldest first
    /// (the latest 256): each says what it changed and the measurement behind
    /// it. Empty with a fixed limit.
    ///
    /// ```
    /// use std::time::Duration;
    /// use quadriga::TaskError;
    /// use quadriga::aio::{Limit, bounded};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let waits = (0..200).map(|_| async {
    ///     tokio::time::sleep(Duration::from_millis(20)).await;
    ///     Ok::<_, TaskError>(())
    /// });
    /// let mut running = bounded(waits, Limit::auto());
    /// while running.next().await.is_some() {}
    /// // Futures that only wait: the controller climbed above 1.
    /// assert!(running.decisions().iter().any(|d| d.to > d.from), "{:?}", running.decisions());
    /// # }
    /// ```
    pub fn decisions(&self) -> &[LimitDecision] {
        match &self.limiter {
            Limiter::Fixed(_) => &[],
            Limiter::Auto(auto) => &auto.decisions,
        }
    }

    /// The next outcome to end, with its input index; `None` when the input is
    /// exhausted and every future has ended.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::bounded;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let mut running = bounded([async { Ok::<_, TaskError>("only") }], 1);
    /// assert_eq!(running.next().await.map(|(i, r)| (i, r.unwrap())), Some((0, "only")));
    /// assert!(running.next().await.is_none());
    /// # }
    /// ```
    pub async fn next(&mut self) -> Option<(usize, Result<T, TaskError>)> {
        poll_fn(|cx| self.poll_outcome(cx)).await
    }

    /// Waits for every future; returns their outcomes in input order. The
    /// input must end.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::bounded;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let out = bounded((0..5).map(|i| async move { Ok::<_, TaskError>(i) }), 2).gather().await;
    /// assert_eq!(out.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [0, 1, 2, 3, 4]);
    /// # }
    /// ```
    pub async fn gather(mut self) -> Vec<Result<T, TaskError>> {
        let mut slots: Vec<Option<Result<T, TaskError>>> = Vec::new();
        while let Some((index, result)) = self.next().await {
            if index >= slots.len() {
                slots.resize_with(index + 1, || None);
            }
            slots[index] = Some(result);
        }
        slots.into_iter().flatten().collect()
    }

    /// Waits for every future and returns their outputs in input order, or
    /// stops at the first error: the futures still running are cancelled (and
    /// waited for), no further one is started, and that error is returned.
    ///
    /// ```
    /// use quadriga::TaskError;
    /// use quadriga::aio::bounded;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // An endless input: it stops at the first error.
    /// let rows = (0..).map(|i| async move {
    ///     if i == 10 { Err(TaskError::failed("row 10 is bad")) } else { Ok(i) }
    /// });
    /// let err = bounded(rows, 4).try_gather().await.unwrap_err();
    /// assert_eq!(err.item(), Some(10));
    /// # }
    /// ```
    pub async fn try_gather(mut self) -> Result<Vec<T>, TaskError> {
        let mut slots: Vec<Option<T>> = Vec::new();
        while let Some((index, result)) = self.next().await {
            match result {
                Ok(value) => {
                    if index >= slots.len() {
                        slots.resize_with(index + 1, || None);
                    }
                    slots[index] = Some(value);
                }
                Err(err) => {
                    self.source = None;
                    self.group.cancel();
                    while self.next().await.is_some() {}
                    return Err(err);
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    /// Starts futures from the source while slots are free.
    fn fill(&mut self, cx: &mut Context<'_>) {
        if let Limiter::Auto(auto) = &mut self.limiter
            && auto.controller.is_none()
        {
            let threads =
                tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers());
            auto.controller = Some(ConcurrencyController::new(threads).with_max(auto.max));
        }
        while self.group.len() < self.limit() {
            let Some(source) = self.source.as_mut() else {
                return;
            };
            match Pin::new(source).poll_next(cx) {
                Poll::Ready(Some(future)) => {
                    let now = Instant::now();
                    let index = self.group.spawn(Timed {
                        future,
                        busy: Duration::ZERO,
                    });
                    if let Limiter::Auto(auto) = &mut self.limiter
                        && let Some(c) = auto.controller.as_mut()
                    {
                        auto.tickets.insert(index, c.job_started(now));
                    }
                }
                Poll::Ready(None) => self.source = None,
                Poll::Pending => return,
            }
        }
    }

    fn poll_outcome(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<(usize, Result<T, TaskError>)>> {
        self.fill(cx);
        match self.group.poll_join_next(cx) {
            Poll::Ready(Some((index, outcome))) => {
                let result = match outcome {
                    Ok(m) => {
                        self.observe(index, Some((m.busy, m.ended)));
                        m.result.map_err(|e| {
                            if e.item().is_none() {
                                e.with_item(index as u64)
                            } else {
                                e
                            }
                        })
                    }
                    Err(e) => {
                        self.observe(index, None);
                        Err(e)
                    }
                };
                Poll::Ready(Some((index, result)))
            }
            // Nothing running: done if the source is, else it is pending (and
            // will wake us).
            Poll::Ready(None) if self.source.is_none() => Poll::Ready(None),
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }

    /// Tells the controller how future `index` went (`None`: no measurement,
    /// it panicked or was cancelled).
    fn observe(&mut self, index: usize, measured: Option<(Duration, Instant)>) {
        let Limiter::Auto(auto) = &mut self.limiter else {
            return;
        };
        let Auto {
            controller: Some(c),
            tickets,
            decisions,
            ..
        } = &mut **auto
        else {
            return;
        };
        let Some(ticket) = tickets.remove(&index) else {
            return;
        };
        let decision = match measured {
            Some((busy, ended)) => c.job_finished(ticket, busy, ended),
            None => {
                c.job_cancelled(ticket, Instant::now());
                None
            }
        };
        if let Some(d) = decision {
            if decisions.len() == KEEP_DECISIONS {
                decisions.remove(0);
            }
            decisions.push(d);
        }
    }
}

impl<S, F, T> Stream for Bounded<S, T>
where
    S: Stream<Item = F> + Unpin,
    F: Future<Output = Result<T, TaskError>> + Send + 'static,
    T: Send + 'static,
{
    type Item = (usize, Result<T, TaskError>);

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_outcome(cx)
    }
}

impl<S, T: 'static> fmt::Debug for Bounded<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let limit = match &self.limiter {
            Limiter::Fixed(n) => format!("fixed {n}"),
            Limiter::Auto(auto) => format!(
                "auto ({})",
                auto.controller
                    .as_ref()
                    .map_or_else(|| "not started".to_owned(), |c| c.limit().to_string())
            ),
        };
        f.debug_struct("Bounded")
            .field("limit", &limit)
            .field("in_flight", &self.group.len())
            .field("exhausted", &self.source.is_none())
            .finish_non_exhaustive()
    }
}
