//! The thread that serves a producer's delivery reports, asleep while librdkafka has none.
//!
//! Why not rdkafka's own polling thread (`ThreadedProducer`, inside `FutureProducer`): it
//! calls `poll(100 ms)`, which loops until its deadline and hands librdkafka the time left in
//! whole milliseconds, so the last millisecond of every 100 is a busy loop of zero-timeout
//! polls and clock reads. An idle ingest spent 0.9 % of a core there, and a 1 M backlog's
//! run 0.1 CPU-s, about 1 % of tokentrail's CPU (benches/README.md, "Twenty-fourth session").
//!
//! Here librdkafka wakes the thread itself: `rd_kafka_queue_cb_event_enable` calls
//! [`wake`] whenever an event lands on the empty main queue, under the queue's lock. The
//! thread serves the queue until it is empty, then parks. An event queued after it found the
//! queue empty unparks it (a thread's unpark before its park makes that park return at
//! once), so none waits. The park also times out after [`FALLBACK`], the old thread's
//! cadence, so a wake that never came delays a report by at most that.

use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle, Thread};
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::producer::{BaseProducer, Producer as _};

use super::handle::Deliveries;

/// The longest a delivery report can wait if a wake-up were ever missed.
pub(super) const FALLBACK: Duration = Duration::from_millis(100);

/// The running thread; stopping it is explicit ([`Poller::stop`]), before the producer drops.
pub(super) struct Poller {
    state: Arc<State>,
    thread: Option<JoinHandle<()>>,
}

struct State {
    stop: AtomicBool,
    /// Passes of the loop: one per event served or park ended.
    #[cfg(test)]
    passes: std::sync::atomic::AtomicU64,
    /// The thread's id, for the tests to read its CPU time.
    #[cfg(test)]
    tid: std::sync::atomic::AtomicI32,
}

impl Poller {
    /// Serves `producer` on a new thread, parking for at most `fallback` when idle.
    pub(super) fn spawn(
        producer: Arc<BaseProducer<Deliveries>>,
        fallback: Duration,
    ) -> std::io::Result<Self> {
        let state = Arc::new(State {
            stop: AtomicBool::new(false),
            #[cfg(test)]
            passes: std::sync::atomic::AtomicU64::new(0),
            #[cfg(test)]
            tid: std::sync::atomic::AtomicI32::new(0),
        });
        let thread = thread::Builder::new().name("producer poll".into()).spawn({
            let state = state.clone();
            move || serve(&producer, &state, fallback)
        })?;
        Ok(Poller {
            state,
            thread: Some(thread),
        })
    }

    #[cfg(test)]
    pub(super) fn passes(&self) -> u64 {
        self.state.passes.load(Ordering::Relaxed)
    }

    /// The thread's CPU time so far (Linux's per-thread `schedstat`, in nanoseconds).
    #[cfg(test)]
    pub(super) fn cpu_ns(&self) -> u64 {
        let tid = self.state.tid.load(Ordering::Acquire);
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
            .expect("the polling thread's schedstat");
        stat.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// Stops and joins the thread; the producer's own drop then flushes what is left.
    pub(super) fn stop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.state.stop.store(true, Ordering::Release);
        thread.thread().unpark();
        if thread.join().is_err() {
            tracing::warn!("the producer's polling thread panicked");
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves the main queue until it is empty, parks until woken (or `fallback`), again.
fn serve(producer: &BaseProducer<Deliveries>, state: &State, fallback: Duration) {
    #[cfg(test)]
    // SAFETY: gettid has no preconditions.
    state
        .tid
        .store(unsafe { libc::gettid() }, Ordering::Release);
    let queue = MainQueue::waking(producer, thread::current());
    while !state.stop.load(Ordering::Acquire) {
        #[cfg(test)]
        state.passes.fetch_add(1, Ordering::Relaxed);
        // One event per call; each call takes at least one op off the queue.
        producer.poll(Duration::ZERO);
        if queue.is_empty() {
            thread::park_timeout(fallback);
        }
    }
}

/// A reference to the producer's main queue with [`wake`] enabled on it; disabled (and the
/// woken thread's handle freed) on drop.
struct MainQueue {
    queue: *mut rd::rd_kafka_queue_t,
    woken: *mut Thread,
}

impl MainQueue {
    fn waking(producer: &BaseProducer<Deliveries>, thread: Thread) -> Self {
        let woken = Box::into_raw(Box::new(thread));
        // SAFETY: the client outlives this value (the thread borrows the producer); the
        // queue reference is released in `drop`, after the callback is disabled, and
        // `woken` lives until then.
        let queue = unsafe { rd::rd_kafka_queue_get_main(producer.client().native_ptr()) };
        unsafe { rd::rd_kafka_queue_cb_event_enable(queue, Some(wake), woken.cast()) };
        MainQueue { queue, woken }
    }

    fn is_empty(&self) -> bool {
        // SAFETY: `queue` is a live reference until drop.
        unsafe { rd::rd_kafka_queue_length(self.queue) == 0 }
    }
}

impl Drop for MainQueue {
    fn drop(&mut self) {
        // SAFETY: disabling takes the queue's lock, under which librdkafka calls `wake`, so
        // no call is running or can start once it returns; then `woken` can be freed.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue, None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue);
            drop(Box::from_raw(self.woken));
        }
    }
}

/// Called by librdkafka, on its own threads, when an event lands on the empty main queue.
unsafe extern "C" fn wake(_client: *mut rd::rd_kafka_t, woken: *mut c_void) {
    // SAFETY: `woken` is the `Thread` boxed by `MainQueue::waking`, alive while enabled.
    unsafe { (*woken.cast::<Thread>()).unpark() };
}
