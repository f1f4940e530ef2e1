//! The one place where a transport name from a plan becomes a concrete transport type.

use std::time::Duration;

use ipcbench_core::baseline::{InprocTransport, NullTransport};
use ipcbench_harness::dispatch::{Dispatch, TransportVisitor};
use ipcbench_harness::plan::{ShmWait, TransportSettings, UdsAddress, UdsKind};
use ipcbench_pipe::PipeTransport;
use ipcbench_shm::{ShmTransport, WaitStrategy};
use ipcbench_tcp::TcpTransport;
use ipcbench_uds::UdsTransport;

/// Builds every transport this binary knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct CliDispatch;

fn size(bytes: Option<u64>) -> Option<usize> {
    bytes.map(|b| usize::try_from(b).unwrap_or(usize::MAX))
}

impl Dispatch for CliDispatch {
    fn dispatch<V: TransportVisitor>(&self, settings: &TransportSettings, visitor: V) -> Result<V::Output, String> {
        Ok(match *settings {
            TransportSettings::Tcp {
                nodelay,
                send_buffer_bytes,
                recv_buffer_bytes,
                listen_ip,
            } => {
                let default = TcpTransport::default();
                visitor.visit(TcpTransport {
                    nodelay,
                    send_buffer_bytes: size(send_buffer_bytes),
                    recv_buffer_bytes: size(recv_buffer_bytes),
                    listen_ip: listen_ip.unwrap_or(default.listen_ip),
                    // Off loopback a peer machine can vanish without closing its sockets.
                    dead_peer_after: listen_ip
                        .filter(|ip| !ip.is_loopback())
                        .map(|_| ipcbench_harness::agent_wire::DEAD_PEER_AFTER),
                })
            }
            TransportSettings::Uds {
                kind,
                address,
                send_buffer_bytes,
                recv_buffer_bytes,
            } => visitor.visit(UdsTransport {
                kind: match kind {
                    UdsKind::Stream => ipcbench_uds::UdsKind::Stream,
                    UdsKind::Seqpacket => ipcbench_uds::UdsKind::Seqpacket,
                },
                send_buffer_bytes: size(send_buffer_bytes),
                recv_buffer_bytes: size(recv_buffer_bytes),
                abstract_address: address == UdsAddress::Abstract,
            }),
            TransportSettings::Pipe { pipe_buffer_bytes } => visitor.visit(PipeTransport {
                pipe_buffer_bytes: size(pipe_buffer_bytes),
            }),
            TransportSettings::Shm { ring_bytes, wait } => visitor.visit(ShmTransport::new(
                usize::try_from(ring_bytes).unwrap_or(usize::MAX),
                match wait {
                    ShmWait::Spin => WaitStrategy::Spin,
                    ShmWait::Hybrid => WaitStrategy::Hybrid,
                    ShmWait::Futex => WaitStrategy::Futex,
                },
            )),
            TransportSettings::Inproc { delay_ns } => {
                visitor.visit(InprocTransport::with_delay(Duration::from_nanos(delay_ns)))
            }
            TransportSettings::Null { delay_ns } => {
                visitor.visit(NullTransport::with_delay(Duration::from_nanos(delay_ns)))
            }
        })
    }
}
