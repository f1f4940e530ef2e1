//! `ipcbench-tcp` against the shared conformance suite, with default and small buffers.

ipcbench_core::conformance_tests!(ipcbench_tcp::TcpTransport::default());

/// Buffers far below the largest message, so every large message crosses many full buffers.
mod small_buffers {
    ipcbench_core::conformance_tests!(ipcbench_tcp::TcpTransport {
        send_buffer_bytes: Some(4096),
        recv_buffer_bytes: Some(4096),
        ..ipcbench_tcp::TcpTransport::default()
    });
}

/// Nagle left on: framing must not depend on segment boundaries.
mod nagle {
    ipcbench_core::conformance_tests!(ipcbench_tcp::TcpTransport {
        nodelay: false,
        ..ipcbench_tcp::TcpTransport::default()
    });
}
