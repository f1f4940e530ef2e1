//! The one place that names the atomics and cells the ring is built from.
//!
//! Under `cfg(loom)` everything comes from loom, so the models in `loom_models` see every
//! atomic access, every fence and every touch of a data cell. Otherwise everything is `std`'s,
//! and [`UnsafeCell`] is a zero-cost wrapper with loom's closure-based `with`/`with_mut` API so
//! the same code compiles both ways. Nothing else in this crate names `std::sync::atomic`.
//!
//! The shared-memory header is `#[repr(C)]` over `std` atomics and is compiled only without
//! loom: loom cannot look inside an OS mapping, so its models drive the index protocol over a
//! heap-backed ring instead (see `ring`).

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;
#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) use loom::sync::Arc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

/// `std::cell::UnsafeCell` with loom's `with`/`with_mut` API (only the heap ring of the tests
/// needs cells; the mapped ring copies through raw pointers).
#[cfg(all(test, not(loom)))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(all(test, not(loom)))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(std::cell::UnsafeCell::new(value))
    }

    /// Calls `f` with a shared pointer to the value; the caller upholds aliasing rules.
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable pointer to the value; the caller upholds aliasing rules.
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}
