//! API latency for the scale simulation: a [`ClusterApi`] in front of the FAKE API server's
//! client that holds every request for a round trip (it takes effect half-way, its answer
//! arrives at the end) and delivers every watch event some time after the change. Without
//! it the fake answers at once and every node sees every change at the same instant, which
//! hides the races a real API server's latency opens: two nodes deciding on the same
//! stale view.

use crate::api::{ApiError, ClusterApi, Event};
use crate::resources::{WardJob, WardJobStatus, WardPipeline};
use futures_util::stream::{BoxStream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// How slow the way to the API server is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latency {
    /// A request's round trip.
    pub round_trip: Duration,
    /// From a change to its watch event reaching a watcher.
    pub watch_delay: Duration,
}

impl Latency {
    /// No latency at all: the fake as it is.
    pub const NONE: Latency = Latency {
        round_trip: Duration::ZERO,
        watch_delay: Duration::ZERO,
    };
}

/// `inner` behind [`Latency`].
#[derive(Clone)]
pub struct Delayed<A> {
    inner: A,
    latency: Latency,
}

impl<A: ClusterApi> Delayed<A> {
    pub fn new(inner: A, latency: Latency) -> Self {
        Delayed { inner, latency }
    }

    /// Runs `request` half a round trip from now and answers half a round trip later.
    async fn call<T>(&self, request: impl Future<Output = T>) -> T {
        let half = self.latency.round_trip / 2;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        let answer = request.await;
        if !half.is_zero() {
            tokio::time::sleep(half).await;
        }
        answer
    }

    /// `events` each held back until `watch_delay` after it was produced. A task reads
    /// the inner stream as fast as it yields, stamping each event, so delays do not add
    /// up behind one another.
    fn delayed<K: Send + 'static>(
        &self,
        events: BoxStream<'static, Result<Event<K>, ApiError>>,
    ) -> BoxStream<'static, Result<Event<K>, ApiError>> {
        let delay = self.latency.watch_delay;
        if delay.is_zero() {
            return events;
        }
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reader = tokio::spawn(async move {
            let mut events = events;
            while let Some(event) = events.next().await {
                if tx.send((Instant::now() + delay, event)).is_err() {
                    return;
                }
            }
        });
        // The reader ends with the stream it feeds.
        let guard = AbortOnDrop(reader);
        futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
            let (due, event) = rx.recv().await?;
            tokio::time::sleep_until(due).await;
            Some((event, (rx, guard)))
        })
        .boxed()
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<A: ClusterApi> ClusterApi for Delayed<A> {
    fn watch_jobs(&self) -> BoxStream<'static, Result<Event<WardJob>, ApiError>> {
        self.delayed(self.inner.watch_jobs())
    }

    async fn get_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.call(self.inner.get_job(name)).await
    }

    async fn create_job(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.call(self.inner.create_job(job)).await
    }

    async fn replace_job_status(&self, job: &WardJob) -> Result<WardJob, ApiError> {
        self.call(self.inner.replace_job_status(job)).await
    }

    async fn patch_job_status(
        &self,
        name: &str,
        resource_version: &str,
        status: &WardJobStatus,
    ) -> Result<WardJob, ApiError> {
        self.call(self.inner.patch_job_status(name, resource_version, status))
            .await
    }

    async fn cancel_job(&self, name: &str) -> Result<WardJob, ApiError> {
        self.call(self.inner.cancel_job(name)).await
    }

    async fn get_pipeline(&self, name: &str) -> Result<WardPipeline, ApiError> {
        self.call(self.inner.get_pipeline(name)).await
    }

    async fn create_pipeline(&self, pipeline: &WardPipeline) -> Result<WardPipeline, ApiError> {
        self.call(self.inner.create_pipeline(pipeline)).await
    }

    async fn get_lease(&self, name: &str) -> Result<Option<Lease>, ApiError> {
        self.call(self.inner.get_lease(name)).await
    }

    async fn create_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.call(self.inner.create_lease(lease)).await
    }

    async fn replace_lease(&self, lease: &Lease) -> Result<Lease, ApiError> {
        self.call(self.inner.replace_lease(lease)).await
    }

    fn watch_leases(&self) -> BoxStream<'static, Result<Event<Lease>, ApiError>> {
        self.delayed(self.inner.watch_leases())
    }
}
