//! Length-prefixed frames over a byte stream.
//!
//! A frame is a 4-byte little-endian length followed by that many bytes. [`FramedStream`]
//! turns any `Read + Write` byte stream (a TCP or Unix stream socket, a pair of FIFOs) into a
//! [`Channel`]. It sends header and body with one vectored write, so a small message costs one
//! system call and, on TCP with Nagle off, one segment. It receives through a buffer, so a
//! small message costs one `read` as well. Large bodies skip the buffer: when nothing is
//! buffered and the last frame was at least [`DIRECT_MIN_BYTES`], one vectored read takes the
//! header into the buffer and the body (predicted to be as long as the last one) straight into
//! the caller's buffer, so a 64 KiB message is not copied a second time; bytes of a following
//! frame that land behind a shorter body are moved back into the buffer.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use crate::{Bare, BareIo, Channel, Halves, Options, RecvHalf, SendHalf, TransportError};

/// Bytes in a frame header.
pub const HEADER_BYTES: usize = 4;
/// The largest message a frame can carry.
pub const MAX_FRAME_BYTES: usize = u32::MAX as usize;
const READ_BUF_BYTES: usize = 64 * 1024;
/// Frames at least this long are read straight into the caller's buffer (see the module docs).
/// At 4 KiB the copy out of the buffer costs more than the `read` it saves: on the 2-vCPU
/// build machine a pipe stream of 4 KiB messages went from 1.19 to 2.23 GB/s when this came
/// down from 16 KiB (`perf`: 40% of the receiver's cycles had been that copy).
pub const DIRECT_MIN_BYTES: usize = 4 * 1024;

/// A byte stream that speaks length-prefixed frames; see the module docs.
#[derive(Debug)]
pub struct FramedStream<R, W = R> {
    reader: R,
    writer: W,
    rx: RxBuffer,
    options: Options,
}

/// Bytes read from the stream but not yet handed out.
///
/// Invariant: `buf[start..end]` always starts at a frame boundary or inside the frame being
/// read.
#[derive(Debug)]
struct RxBuffer {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The length of the last frame received: the prediction for the next one.
    last_len: usize,
}

impl<R: Read + Send, W: Write + Send> FramedStream<R, W> {
    /// Wraps a reader and a writer (the same socket twice via `try_clone`, or two FIFOs).
    pub fn new(reader: R, writer: W) -> Self {
        FramedStream {
            reader,
            writer,
            rx: RxBuffer {
                buf: vec![0; READ_BUF_BYTES].into_boxed_slice(),
                start: 0,
                end: 0,
                last_len: 0,
            },
            options: Options::new(),
        }
    }

    /// Records the options the transport applied, reported by [`Channel::applied_options`].
    pub fn with_options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The reading half.
    pub fn reader(&self) -> &R {
        &self.reader
    }

    /// The writing half.
    pub fn writer(&self) -> &W {
        &self.writer
    }
}

impl RxBuffer {
    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads once into the spare part of the buffer. `Ok(false)` means end of stream.
    fn fill(&mut self, reader: &mut impl Read) -> Result<bool, TransportError> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match reader.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TransportError::io("read", e)),
            }
        }
    }

    /// Receives one frame's body into `buf`, reading from `reader` as needed.
    fn recv(&mut self, reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, TransportError> {
        if self.buffered() == 0
            && self.last_len >= DIRECT_MIN_BYTES
            && let Some(len) = self.recv_direct(reader, buf)?
        {
            self.last_len = len;
            return Ok(len);
        }
        let len = self.recv_buffered(reader, buf)?;
        self.last_len = len;
        Ok(len)
    }

    /// With nothing buffered: one vectored read of the header into this buffer and of the
    /// body, predicted as long as the last one, straight into `buf`, then the rest of the body
    /// straight into `buf`. `Ok(None)` when the read brought less than a header (those bytes
    /// are buffered and [`RxBuffer::recv_buffered`] goes on).
    fn recv_direct(&mut self, reader: &mut impl Read, buf: &mut [u8]) -> Result<Option<usize>, TransportError> {
        self.start = 0;
        self.end = 0;
        // At most what this buffer can take back, header included (see the two moves below).
        let predicted = self.last_len.min(buf.len()).min(self.buf.len() - HEADER_BYTES);
        let n = loop {
            let mut iov = [
                IoSliceMut::new(&mut self.buf[..HEADER_BYTES]),
                IoSliceMut::new(&mut buf[..predicted]),
            ];
            match reader.read_vectored(&mut iov) {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TransportError::io("read", e)),
            }
        };
        if n < HEADER_BYTES {
            self.end = n;
            return Ok(None);
        }
        let header: [u8; HEADER_BYTES] = self.buf[..HEADER_BYTES].try_into().expect("4 bytes");
        let len = u32::from_le_bytes(header) as usize;
        let body_got = n - HEADER_BYTES;
        if len > buf.len() {
            // Put the frame back as the buffered path would have left it, and refuse it.
            self.buf[HEADER_BYTES..n].copy_from_slice(&buf[..body_got]);
            self.end = n;
            return Err(TransportError::MessageTooLarge { len, max: buf.len() });
        }
        if body_got > len {
            // The next frame's first bytes landed behind this (shorter) body: keep them.
            let extra = body_got - len;
            self.buf[..extra].copy_from_slice(&buf[len..body_got]);
            self.end = extra;
            return Ok(Some(len));
        }
        let mut got = body_got;
        while got < len {
            match reader.read(&mut buf[got..len]) {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransportError::io("read", e)),
            }
        }
        Ok(Some(len))
    }

    /// Receives one frame's body into `buf` through this buffer.
    fn recv_buffered(&mut self, reader: &mut impl Read, buf: &mut [u8]) -> Result<usize, TransportError> {
        while self.buffered() < HEADER_BYTES {
            if !self.fill(reader)? {
                return Err(TransportError::Disconnected);
            }
        }
        let header: [u8; HEADER_BYTES] = self.buf[self.start..self.start + HEADER_BYTES]
            .try_into()
            .expect("4 bytes");
        let len = u32::from_le_bytes(header) as usize;
        if len > buf.len() {
            return Err(TransportError::MessageTooLarge { len, max: buf.len() });
        }
        self.start += HEADER_BYTES;
        let from_buf = len.min(self.buffered());
        buf[..from_buf].copy_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        let mut got = from_buf;
        // A large remainder goes straight into the caller's buffer; a small one through ours,
        // so the next frame's header usually arrives in the same read.
        while got < len {
            let want = len - got;
            if want >= self.buf.len() / 2 {
                match reader.read(&mut buf[got..len]) {
                    Ok(0) => return Err(TransportError::Disconnected),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(TransportError::io("read", e)),
                }
            } else {
                if !self.fill(reader)? {
                    return Err(TransportError::Disconnected);
                }
                let take = want.min(self.buffered());
                buf[got..got + take].copy_from_slice(&self.buf[self.start..self.start + take]);
                self.start += take;
                got += take;
            }
        }
        Ok(len)
    }
}

/// Sends one frame: a header and `msg`.
fn send_frame(writer: &mut impl Write, msg: &[u8]) -> Result<(), TransportError> {
    let len = u32::try_from(msg.len()).map_err(|_| TransportError::MessageTooLarge {
        len: msg.len(),
        max: MAX_FRAME_BYTES,
    })?;
    let header = len.to_le_bytes();
    write_all_vectored(writer, &header, msg).map_err(|e| TransportError::io("write", e))
}

impl<R: Read + Send, W: Write + Send> Channel for FramedStream<R, W> {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        send_frame(&mut self.writer, msg)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.rx.recv(&mut self.reader, buf)
    }

    fn applied_options(&self) -> Options {
        self.options.clone()
    }

    /// The writer and the reader (with the bytes already buffered) as two halves.
    fn split(&mut self) -> Option<Halves<'_>> {
        Some((
            Box::new(FrameSender {
                writer: &mut self.writer,
            }),
            Box::new(FrameReceiver {
                reader: &mut self.reader,
                rx: &mut self.rx,
            }),
        ))
    }
}

impl<R: Read + Send, W: Write + Send> FramedStream<R, W> {
    /// The bare loop over the stream itself (see [`Channel::bare`]): plain `write` and `read`
    /// calls, the bytes this stream buffered handed out first.
    pub fn bare(&mut self) -> Bare<'_> {
        Box::new(BareStream {
            reader: &mut self.reader,
            writer: &mut self.writer,
            rx: &mut self.rx,
        })
    }
}

/// Raw bytes over the stream of a [`FramedStream`].
struct BareStream<'a, R, W> {
    reader: &'a mut R,
    writer: &'a mut W,
    rx: &'a mut RxBuffer,
}

impl<R: Read, W: Write> BareIo for BareStream<'_, R, W> {
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), TransportError> {
        self.writer.write_all(bytes).map_err(|e| TransportError::io("write", e))
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), TransportError> {
        let from_buf = buf.len().min(self.rx.buffered());
        buf[..from_buf].copy_from_slice(&self.rx.buf[self.rx.start..self.rx.start + from_buf]);
        self.rx.start += from_buf;
        self.reader
            .read_exact(&mut buf[from_buf..])
            .map_err(|e| TransportError::io("read", e))
    }
}

/// The sending half of a split [`FramedStream`].
struct FrameSender<'a, W> {
    writer: &'a mut W,
}

impl<W: Write + Send> SendHalf for FrameSender<'_, W> {
    fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        send_frame(self.writer, msg)
    }
}

/// The receiving half of a split [`FramedStream`].
struct FrameReceiver<'a, R> {
    reader: &'a mut R,
    rx: &'a mut RxBuffer,
}

impl<R: Read + Send> RecvHalf for FrameReceiver<'_, R> {
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        self.rx.recv(self.reader, buf)
    }
}

/// Writes `header` then `body` with as few `writev` calls as the stream allows.
fn write_all_vectored(writer: &mut impl Write, header: &[u8], body: &[u8]) -> io::Result<()> {
    let total = header.len() + body.len();
    let mut written = 0;
    while written < total {
        let result = if written < header.len() {
            writer.write_vectored(&[IoSlice::new(&header[written..]), IoSlice::new(body)])
        } else {
            writer.write(&body[written - header.len()..])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    /// An in-memory byte pipe that hands out at most `chunk` bytes per read, to exercise
    /// partial reads and writes.
    #[derive(Clone)]
    struct Pipe {
        bytes: Arc<Mutex<VecDeque<u8>>>,
        chunk: usize,
    }
    impl Read for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut q = self.bytes.lock().unwrap();
            let n = buf.len().min(q.len()).min(self.chunk);
            for b in &mut buf[..n] {
                *b = q.pop_front().unwrap();
            }
            Ok(n)
        }
        /// Fills the slices in order, like `readv`, so the direct path's fix-ups run.
        fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
            let mut total = 0;
            for buf in bufs {
                let n = self.read(buf)?;
                total += n;
                if n < buf.len() {
                    break;
                }
            }
            Ok(total)
        }
    }
    impl Write for Pipe {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk);
            self.bytes.lock().unwrap().extend(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn roundtrip(sizes: &[usize], chunk: usize) {
        let pipe = Pipe {
            bytes: Arc::default(),
            chunk,
        };
        let mut stream = FramedStream::new(pipe.clone(), pipe);
        for &size in sizes {
            let msg: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            stream.send(&msg).unwrap();
        }
        let mut buf = vec![0; 1 << 20];
        for &size in sizes {
            let n = stream.recv(&mut buf).unwrap();
            assert_eq!(n, size);
            assert!(buf[..n].iter().enumerate().all(|(i, &b)| b == (i * 7 + size) as u8));
        }
        assert!(matches!(stream.recv(&mut buf), Err(TransportError::Disconnected)));
    }

    #[test]
    fn frames_survive_partial_reads_and_writes() {
        roundtrip(&[0, 1, 3, 4, 5, 1000, 70_000, 0, 200_000, 17], 3);
        roundtrip(&[0, 1, 3, 4, 5, 1000, 70_000, 0, 200_000, 17], 100_000);
    }

    #[test]
    fn large_frames_of_changing_sizes_take_the_direct_path() {
        // Large after large (the prediction is right, too long, too short), small ones between,
        // and a frame that starts behind a shorter one's body in the same read.
        let sizes = [
            40_000, 40_000, 20_000, 60_000, 16_384, 5, 70_000, 16_384, 0, 100_000, 17_000,
        ];
        for chunk in [1, 3, 4, 5, 4096, 20_003, 65_536, 1 << 20] {
            roundtrip(&sizes, chunk);
        }
    }

    #[test]
    fn a_too_large_frame_on_the_direct_path_is_left_in_place() {
        let pipe = Pipe {
            bytes: Arc::default(),
            chunk: 1 << 20,
        };
        let mut stream = FramedStream::new(pipe.clone(), pipe);
        stream.send(&[1; 20_000]).unwrap();
        stream.send(&[2; 30_000]).unwrap();
        let mut buf = vec![0; 25_000];
        assert_eq!(stream.recv(&mut buf).unwrap(), 20_000);
        assert!(matches!(
            stream.recv(&mut buf),
            Err(TransportError::MessageTooLarge {
                len: 30_000,
                max: 25_000
            })
        ));
        // The frame is still there for a buffer that fits it.
        let mut big = vec![0; 40_000];
        assert_eq!(stream.recv(&mut big).unwrap(), 30_000);
        assert!(big[..30_000].iter().all(|&b| b == 2));
    }

    #[test]
    fn short_buffer_is_message_too_large() {
        let pipe = Pipe {
            bytes: Arc::default(),
            chunk: 1 << 20,
        };
        let mut stream = FramedStream::new(pipe.clone(), pipe);
        stream.send(&[1; 100]).unwrap();
        let mut buf = [0; 10];
        assert!(matches!(
            stream.recv(&mut buf),
            Err(TransportError::MessageTooLarge { len: 100, max: 10 })
        ));
    }

    #[test]
    fn split_halves_share_the_buffered_bytes() {
        let pipe = Pipe {
            bytes: Arc::default(),
            chunk: 1 << 20,
        };
        let mut stream = FramedStream::new(pipe.clone(), pipe);
        stream.send(b"one").unwrap();
        stream.send(b"two").unwrap();
        let mut buf = [0u8; 8];
        // The first read buffers both frames; the second must come out of the split half.
        assert_eq!(stream.recv(&mut buf).unwrap(), 3);
        {
            let (mut tx, mut rx) = stream.split().unwrap();
            assert_eq!(rx.recv(&mut buf).unwrap(), 3);
            assert_eq!(&buf[..3], b"two");
            tx.send(b"three").unwrap();
        }
        assert_eq!(stream.recv(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"three");
    }

    #[test]
    fn bare_bytes_follow_the_buffered_ones_and_frames_resume() {
        let pipe = Pipe {
            bytes: Arc::default(),
            chunk: 10,
        };
        let mut stream = FramedStream::new(pipe.clone(), pipe);
        stream.send(b"one").unwrap();
        {
            let mut bare = stream.bare();
            bare.write_all(b"raw bytes").unwrap();
        }
        stream.send(b"two").unwrap();
        let mut buf = [0u8; 16];
        // The first read buffers the frame and some raw bytes after it.
        assert_eq!(stream.recv(&mut buf).unwrap(), 3);
        {
            let mut bare = stream.bare();
            let mut raw = [0u8; 9];
            bare.read_exact(&mut raw).unwrap();
            assert_eq!(&raw, b"raw bytes");
        }
        assert_eq!(stream.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"two");
    }

    proptest::proptest! {
        #[test]
        fn any_sizes_and_chunking_roundtrip(sizes in proptest::collection::vec(0usize..100_000, 1..12), chunk in 1usize..70_000) {
            roundtrip(&sizes, chunk);
        }
    }
}
