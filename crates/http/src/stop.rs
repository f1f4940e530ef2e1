//! The stop signal of the serving roles.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

/// Tells a running [`crate::Origin`] or [`crate::Relay`] to stop; cloneable, usable from any
/// thread. A role also stops by itself at the optional deadline.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    stopped: AtomicBool,
    notify: Notify,
    deadline: Option<Instant>,
}

impl Stop {
    /// A signal that fires only when [`Stop::stop`] is called.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A signal that also fires by itself at `deadline`.
    pub fn with_deadline(deadline: Instant) -> Stop {
        Stop {
            inner: Arc::new(Inner {
                deadline: Some(deadline),
                ..Inner::default()
            }),
        }
    }

    /// Fires the signal.
    pub fn stop(&self) {
        // Release pairs with the Acquire load in `is_stopped`.
        self.inner.stopped.store(true, Ordering::Release);
        self.inner.notify.notify_waiters();
    }

    /// Whether the signal has fired (by call or by deadline).
    pub fn is_stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::Acquire) || self.inner.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Resolves once the signal has fired.
    pub(crate) async fn wait(&self) {
        let flagged = async {
            loop {
                let notified = self.inner.notify.notified();
                tokio::pin!(notified);
                // Registering before the check means a `stop` between check and await still wakes us.
                notified.as_mut().enable();
                if self.inner.stopped.load(Ordering::Acquire) {
                    return;
                }
                notified.await;
            }
        };
        match self.inner.deadline {
            Some(deadline) => {
                tokio::select! {
                    () = flagged => {}
                    () = tokio::time::sleep_until(deadline.into()) => {}
                }
            }
            None => flagged.await,
        }
    }
}
