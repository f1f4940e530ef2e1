//! How the harness gets a concrete transport without naming one.
//!
//! The CLI implements [`Dispatch`] once: a `match` from [`TransportSettings`] to a concrete
//! transport, handed to a [`TransportVisitor`]. Every visitor method is generic, so the timed
//! loops it runs are monomorphic per transport, with no dynamic dispatch on the measured path.

use ipcbench_core::Transport;

use crate::plan::TransportSettings;

/// Work to do with a concrete transport.
pub trait TransportVisitor {
    /// What the work produces.
    type Output;
    /// Does the work with `transport`.
    fn visit<T: Transport + 'static>(self, transport: T) -> Self::Output;
}

/// Builds concrete transports from settings (implemented by the CLI).
pub trait Dispatch: Sync {
    /// Builds the transport `settings` describe and hands it to `visitor`.
    ///
    /// # Errors
    /// A message when the transport cannot be built on this machine.
    fn dispatch<V: TransportVisitor>(&self, settings: &TransportSettings, visitor: V) -> Result<V::Output, String>;

    /// Builds two transports (the `front` and `back` of a proxy case) and hands both to
    /// `visitor`. The default dispatches `front`, then `back` inside its visitor, so every
    /// [`Dispatch`] gets it and the pair is monomorphic too.
    ///
    /// # Errors
    /// A message when either transport cannot be built on this machine.
    fn dispatch_pair<V: PairVisitor>(
        &self,
        front: &TransportSettings,
        back: &TransportSettings,
        visitor: V,
    ) -> Result<V::Output, String>
    where
        Self: Sized,
    {
        struct Inner<F, V> {
            front: F,
            visitor: V,
        }
        impl<F: Transport + 'static, V: PairVisitor> TransportVisitor for Inner<F, V> {
            type Output = V::Output;
            fn visit<B: Transport + 'static>(self, back: B) -> V::Output {
                self.visitor.visit_pair(self.front, back)
            }
        }
        struct Outer<'a, D, V> {
            dispatch: &'a D,
            back: &'a TransportSettings,
            visitor: V,
        }
        impl<D: Dispatch, V: PairVisitor> TransportVisitor for Outer<'_, D, V> {
            type Output = Result<V::Output, String>;
            fn visit<F: Transport + 'static>(self, front: F) -> Self::Output {
                self.dispatch.dispatch(
                    self.back,
                    Inner {
                        front,
                        visitor: self.visitor,
                    },
                )
            }
        }
        self.dispatch(
            front,
            Outer {
                dispatch: self,
                back,
                visitor,
            },
        )?
    }
}

/// Work to do with two concrete transports (the front and back of a proxy case).
pub trait PairVisitor {
    /// What the work produces.
    type Output;
    /// Does the work with `front` and `back`.
    fn visit_pair<F: Transport + 'static, B: Transport + 'static>(self, front: F, back: B) -> Self::Output;
}

/// Dispatches the two baselines of `ipcbench-core` only: what the harness's own tests use.
#[derive(Debug, Clone, Copy, Default)]
pub struct BaselineDispatch;

impl Dispatch for BaselineDispatch {
    fn dispatch<V: TransportVisitor>(&self, settings: &TransportSettings, visitor: V) -> Result<V::Output, String> {
        use ipcbench_core::baseline::{InprocTransport, NullTransport};
        use std::time::Duration;
        match *settings {
            TransportSettings::Inproc { delay_ns } => {
                Ok(visitor.visit(InprocTransport::with_delay(Duration::from_nanos(delay_ns))))
            }
            TransportSettings::Null { delay_ns } => {
                Ok(visitor.visit(NullTransport::with_delay(Duration::from_nanos(delay_ns))))
            }
            _ => Err(format!(
                "transport `{}` is not available in this build",
                settings.kind()
            )),
        }
    }
}
