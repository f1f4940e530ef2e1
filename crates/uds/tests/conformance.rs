//! `ipcbench-uds` against the shared conformance suite: stream, seqpacket, abstract addresses.
#![cfg(unix)]

ipcbench_core::conformance_tests!(ipcbench_uds::UdsTransport::default());

/// `SOCK_SEQPACKET`, where messages above the packet limit are split.
mod seqpacket {
    ipcbench_core::conformance_tests!(ipcbench_uds::UdsTransport {
        kind: ipcbench_uds::UdsKind::Seqpacket,
        ..ipcbench_uds::UdsTransport::default()
    });
}

/// `SOCK_SEQPACKET` with 4 KiB buffers: even mid-sized messages span many packets.
mod seqpacket_small_buffers {
    ipcbench_core::conformance_tests!(ipcbench_uds::UdsTransport {
        kind: ipcbench_uds::UdsKind::Seqpacket,
        send_buffer_bytes: Some(4096),
        recv_buffer_bytes: Some(4096),
        ..ipcbench_uds::UdsTransport::default()
    });
}

/// Linux abstract addresses: no socket file at all.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod abstract_address {
    ipcbench_core::conformance_tests!(ipcbench_uds::UdsTransport {
        abstract_address: true,
        ..ipcbench_uds::UdsTransport::default()
    });
}
