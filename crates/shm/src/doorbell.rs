//! The sleep/wake handshake between a side about to sleep and the side that must wake it.
//!
//! A [`Doorbell`] is one `u32` in shared memory: `AWAKE` (0) or `ASLEEP` (1). It is also the
//! futex word the sleeper waits on. The protocol, for a consumer waiting for data (a producer
//! waiting for space is the same with `head` for `tail`; a consumer waiting for the next record
//! checks its commit word, which the producer stores before `tail`, the same way):
//!
//! ```text
//! sleeper (consumer)                      waker (producer)
//! S1  word = ASLEEP        (announce)     W1  tail = new       (publish, Release)
//! S2  fence(SeqCst)                       W2  fence(SeqCst)
//! S3  load tail: data? -> cancel, return  W3  load word: ASLEEP? -> swap(AWAKE) was ASLEEP?
//! S4  FUTEX_WAIT(word, ASLEEP, timeout)                           -> FUTEX_WAKE
//! ```
//!
//! This is Dekker's pattern: each side stores, fences, then loads what the other side stored.
//! The two SeqCst fences are totally ordered. If S2 comes first, W3 sees `ASLEEP` (the store
//! S1 precedes S2, which precedes W2 and so W3) and the waker rings. If W2 comes first, S3 sees
//! the new `tail` (W1 precedes W2, which precedes S2 and so S3) and the sleeper does not sleep.
//! Without the fences both loads could read stale values (store buffering, which x86 allows
//! too), the sleeper would sleep on published data and the waker would not ring: a lost
//! wake-up.
//!
//! A woken sleeper needs no ordering from the word itself: it re-checks its condition, and
//! if that still looks unmet it announces again, and the fence pair above then guarantees it
//! sees the publication (the waker's W2 cannot follow the new S2, because W3 read a value the
//! sleeper has since overwritten).
//!
//! The waker swaps the word back to `AWAKE` before `FUTEX_WAKE`, and the sleeper's
//! `FUTEX_WAIT` sleeps only while the word still reads `ASLEEP` (the kernel checks that under
//! its own lock). So a wake that lands between S3 and S4 makes S4 return at once instead of
//! being lost. The swap also means only one waker pays for the syscall.
//!
//! The waker's fast path (nobody asleep) is a fence and a load of a line nobody writes. A
//! waker whose peer never sleeps (the `spin` strategy) skips even that.
//!
//! The loom models in `loom_models` check this handshake with the futex replaced by "spin
//! until the word is `AWAKE`", so a lost wake-up shows up as a model that never ends.

use crate::sync::{AtomicU32, Ordering, fence};

const AWAKE: u32 = 0;
const ASLEEP: u32 = 1;

/// The flag a sleeper raises before it sleeps, and the futex word it sleeps on.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Doorbell {
    word: AtomicU32,
}

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell {
            word: AtomicU32::new(AWAKE),
        }
    }
}

impl Doorbell {
    /// Sleeper, step S1-S2: says "I am going to sleep". The caller must then re-check its
    /// condition (S3) and sleep only if it still does not hold.
    pub(crate) fn announce(&self) {
        // Relaxed: the fence below orders this store before the caller's re-check (S3); that
        // is all the waker relies on (its W2 fence pairs with ours).
        self.word.store(ASLEEP, Ordering::Relaxed);
        // SeqCst fence pairs with the waker's fence in `Doorbell::ring` (Dekker, see module
        // docs): either the waker sees ASLEEP or our re-check sees its publication.
        fence(Ordering::SeqCst);
    }

    /// Sleeper: takes the announcement back after waking or after finding its condition met.
    pub(crate) fn cancel(&self) {
        // Relaxed: the word only decides whether a waker makes a syscall; a waker that still
        // sees ASLEEP issues one spurious FUTEX_WAKE, nothing worse. Data visibility comes
        // from the counters' own Release/Acquire pairs.
        self.word.store(AWAKE, Ordering::Relaxed);
    }

    /// Waker, step W2-W3, called after publishing: true when a sleeper announced itself and
    /// the caller must issue `FUTEX_WAKE` on [`Doorbell::word`].
    pub(crate) fn ring(&self) -> bool {
        // SeqCst fence pairs with the sleeper's fence in `Doorbell::announce` (Dekker): our
        // publication, made before it, is seen by the sleeper's re-check, or we see ASLEEP.
        fence(Ordering::SeqCst);
        // Relaxed: ordered after our publication by the fence above; a plain load first keeps
        // the common case (nobody asleep) free of a read-modify-write.
        if self.word.load(Ordering::Relaxed) != ASLEEP {
            return false;
        }
        // Relaxed: the swap only elects which waker issues the syscall. Its store of AWAKE is
        // what makes a FUTEX_WAIT that has not started yet return at once (the kernel compares
        // the word), and the kernel orders its own compare against this store.
        self.word.swap(AWAKE, Ordering::Relaxed) == ASLEEP
    }

    /// The futex word: a sleeper waits while it reads `ASLEEP`.
    #[cfg(not(loom))]
    pub(crate) fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// The value the sleeper passes to `FUTEX_WAIT`: sleep only while still announced.
    #[cfg(not(loom))]
    pub(crate) const ASLEEP: u32 = ASLEEP;

    /// True while a sleeper is announced (what the loom models spin on in place of a futex).
    #[cfg(loom)]
    pub(crate) fn is_announced(&self) -> bool {
        // Relaxed: a sleeper that reads AWAKE re-announces and re-checks behind the SeqCst
        // fence before it could sleep again, and that fence (not this load) is what makes it
        // see the publication; the model checks exactly that.
        self.word.load(Ordering::Relaxed) == ASLEEP
    }
}
