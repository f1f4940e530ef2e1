//! Messages over `SOCK_SEQPACKET`: one packet per message where it fits, split where not.
//!
//! ```text
//! first packet         [0..8) message length, u64 little-endian   [8..) first bytes of the message
//! continuation packets the next bytes of the message, until the length is reached
//! ```
//!
//! The kernel refuses a packet larger than about the sender's `SO_SNDBUF` (Linux:
//! `SO_SNDBUF - 32`) with `EMSGSIZE`, and very large packets need large contiguous kernel
//! allocations, so a packet carries at most [`MAX_PACKET_BYTES`]. Should the kernel still
//! refuse a packet, the sender halves its packet size and tries again; the receiver needs no
//! change, since it reads until it has the length announced in the first packet.
//!
//! Every packet carries at least one byte (a 0-byte message is a bare 8-byte header), so a
//! read of 0 bytes can only mean that the peer closed its end.

use std::io::{self, IoSlice, IoSliceMut};

use ipcbench_core::{Halves, RecvHalf, SendHalf, TransportError};
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvFlags, ReturnFlags, SendAncillaryBuffer, SendFlags, recvmsg, sendmsg};
use socket2::Socket;

/// Bytes of the length header in the first packet of each message.
const LEN_BYTES: usize = 8;
/// The largest packet sent: big enough that a 4 MiB message is 64 packets, small enough that
/// the kernel builds it from page fragments instead of one large contiguous allocation.
pub(crate) const MAX_PACKET_BYTES: usize = 64 * 1024;
/// The packet size below which halving stops and `EMSGSIZE` is reported.
const MIN_PACKET_BYTES: usize = 256;
/// Per-packet overhead Linux subtracts from `SO_SNDBUF` when checking a packet's size.
const KERNEL_PACKET_OVERHEAD: usize = 32;

/// A connected `SOCK_SEQPACKET` socket speaking the packet format in the module docs.
///
/// Invariant: `packet_bytes` is in `MIN_PACKET_BYTES..=MAX_PACKET_BYTES`.
#[derive(Debug)]
pub(crate) struct SeqpacketChannel {
    socket: Socket,
    packet_bytes: usize,
}

impl SeqpacketChannel {
    /// Wraps a connected blocking socket whose send buffer holds `send_buffer_bytes`.
    pub(crate) fn new(socket: Socket, send_buffer_bytes: usize) -> Self {
        let packet_bytes = send_buffer_bytes
            .saturating_sub(KERNEL_PACKET_OVERHEAD)
            .clamp(MIN_PACKET_BYTES, MAX_PACKET_BYTES);
        SeqpacketChannel { socket, packet_bytes }
    }

    /// The largest packet this side currently sends.
    #[cfg(test)]
    pub(crate) fn packet_bytes(&self) -> usize {
        self.packet_bytes
    }

    pub(crate) fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        let header = (msg.len() as u64).to_le_bytes();
        let mut sent = 0;
        loop {
            let first = sent == 0;
            let room = if first {
                self.packet_bytes - LEN_BYTES
            } else {
                self.packet_bytes
            };
            let body = &msg[sent..msg.len().min(sent + room)];
            let result = if first {
                send_packet(&self.socket, &[IoSlice::new(&header), IoSlice::new(body)])
            } else {
                send_packet(&self.socket, &[IoSlice::new(body)])
            };
            match result {
                Ok(()) => {
                    sent += body.len();
                    if sent == msg.len() {
                        return Ok(());
                    }
                }
                // Nothing was sent; a smaller packet may pass.
                Err(Errno::MSGSIZE) if self.packet_bytes / 2 >= MIN_PACKET_BYTES => self.packet_bytes /= 2,
                Err(errno) => return Err(TransportError::io("sendmsg", errno.into())),
            }
        }
    }

    pub(crate) fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let mut header = [0u8; LEN_BYTES];
        let (got, flags) = recv_packet(&self.socket, &mut [IoSliceMut::new(&mut header), IoSliceMut::new(buf)])?;
        if got == 0 {
            return Err(TransportError::Disconnected);
        }
        if got < LEN_BYTES {
            return Err(protocol_error("first packet shorter than its length header"));
        }
        let len = u64::from_le_bytes(header);
        let len = match usize::try_from(len) {
            Ok(len) if len <= buf.len() => len,
            _ => {
                return Err(TransportError::MessageTooLarge {
                    len: usize::try_from(len).unwrap_or(usize::MAX),
                    max: buf.len(),
                });
            }
        };
        let mut filled = got - LEN_BYTES;
        if filled > len || flags.contains(ReturnFlags::TRUNC) {
            return Err(protocol_error("first packet longer than its message"));
        }
        while filled < len {
            let (got, flags) = recv_packet(&self.socket, &mut [IoSliceMut::new(&mut buf[filled..len])])?;
            if got == 0 {
                return Err(TransportError::Disconnected);
            }
            if flags.contains(ReturnFlags::TRUNC) {
                return Err(protocol_error(
                    "continuation packet longer than the rest of its message",
                ));
            }
            filled += got;
        }
        Ok(len)
    }
}

impl SeqpacketChannel {
    /// Two channels over duplicates of the socket: one for each thread of a split channel.
    /// A seqpacket socket keeps each packet whole, so concurrent send and receive are safe.
    pub(crate) fn split(&mut self) -> Option<Halves<'static>> {
        let sender = self.socket.try_clone().ok()?;
        let receiver = self.socket.try_clone().ok()?;
        Some((
            Box::new(SeqpacketChannel {
                socket: sender,
                packet_bytes: self.packet_bytes,
            }),
            Box::new(SeqpacketChannel {
                socket: receiver,
                packet_bytes: self.packet_bytes,
            }),
        ))
    }
}

impl SendHalf for SeqpacketChannel {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        SeqpacketChannel::send(self, msg)
    }
}

impl RecvHalf for SeqpacketChannel {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        SeqpacketChannel::recv(self, buf)
    }
}

/// Sends one whole packet, retrying on signals. `EPIPE` comes back as an error, never a signal.
fn send_packet(socket: &Socket, iov: &[IoSlice<'_>]) -> Result<(), Errno> {
    let expected: usize = iov.iter().map(|slice| slice.len()).sum();
    loop {
        match sendmsg(socket, iov, &mut SendAncillaryBuffer::default(), SendFlags::NOSIGNAL) {
            // A seqpacket socket sends a packet whole or not at all.
            Ok(n) if n == expected => return Ok(()),
            Ok(_) => return Err(Errno::IO),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno),
        }
    }
}

/// Receives one packet, retrying on signals; returns its length and flags.
fn recv_packet(socket: &Socket, iov: &mut [IoSliceMut<'_>]) -> Result<(usize, ReturnFlags), TransportError> {
    loop {
        match recvmsg(socket, iov, &mut RecvAncillaryBuffer::new(&mut []), RecvFlags::empty()) {
            Ok(msg) => return Ok((msg.bytes, msg.flags)),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(TransportError::io("recvmsg", errno.into())),
        }
    }
}

fn protocol_error(what: &'static str) -> TransportError {
    TransportError::Io {
        op: "recvmsg",
        source: io::Error::new(io::ErrorKind::InvalidData, format!("seqpacket framing broken: {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};

    fn pair(send_buffer_bytes: usize) -> (SeqpacketChannel, SeqpacketChannel) {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        (
            SeqpacketChannel::new(a, send_buffer_bytes),
            SeqpacketChannel::new(b, send_buffer_bytes),
        )
    }

    #[test]
    fn packet_size_stays_within_bounds() {
        assert_eq!(pair(0).0.packet_bytes(), MIN_PACKET_BYTES);
        assert_eq!(pair(8192).0.packet_bytes(), 8192 - KERNEL_PACKET_OVERHEAD);
        assert_eq!(pair(usize::MAX).0.packet_bytes(), MAX_PACKET_BYTES);
    }

    #[test]
    fn split_messages_reassemble() {
        let (mut a, mut b) = pair(MAX_PACKET_BYTES);
        let sizes = [
            0,
            1,
            7,
            8,
            9,
            MAX_PACKET_BYTES - LEN_BYTES,
            MAX_PACKET_BYTES - LEN_BYTES + 1,
            200_000,
        ];
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 200_000];
            let mut lens = Vec::new();
            for _ in 0..8 {
                let n = b.recv(&mut buf).unwrap();
                assert!(buf[..n].iter().enumerate().all(|(i, &x)| x == (i % 251) as u8));
                lens.push(n);
            }
            lens
        });
        for size in sizes {
            let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            a.send(&msg).unwrap();
        }
        assert_eq!(reader.join().unwrap(), sizes);
    }

    #[test]
    fn oversized_packets_are_halved_until_the_kernel_takes_them() {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        a.set_send_buffer_size(4096).unwrap();
        // Pretend the send buffer is far larger than it is: the first packets are refused.
        let mut a = SeqpacketChannel::new(a, usize::MAX);
        let mut b = SeqpacketChannel::new(b, 0);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 100_000];
            b.recv(&mut buf).unwrap()
        });
        a.send(&[7u8; 100_000]).unwrap();
        assert!(a.packet_bytes() < MAX_PACKET_BYTES);
        assert_eq!(reader.join().unwrap(), 100_000);
    }

    #[test]
    fn short_buffer_is_message_too_large() {
        let (mut a, mut b) = pair(MAX_PACKET_BYTES);
        a.send(&[1; 100]).unwrap();
        let mut buf = [0u8; 10];
        assert!(matches!(
            b.recv(&mut buf),
            Err(TransportError::MessageTooLarge { len: 100, max: 10 })
        ));
    }

    #[test]
    fn closed_peer_is_disconnected_both_ways() {
        let (mut a, b) = pair(MAX_PACKET_BYTES);
        drop(b);
        assert!(a.send(b"x").unwrap_err().is_disconnected());
        let mut buf = [0u8; 8];
        assert!(a.recv(&mut buf).unwrap_err().is_disconnected());
    }
}
