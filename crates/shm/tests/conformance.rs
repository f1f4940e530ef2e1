//! The shared conformance suite, once per wait strategy and once with a one-page ring, through
//! which every message above 4 KiB has to be streamed in pieces.
#![cfg(all(target_os = "linux", not(loom)))]

mod spin {
    ipcbench_core::conformance_tests!(ipcbench_shm::ShmTransport::default());
}

mod hybrid {
    ipcbench_core::conformance_tests!(
        ipcbench_shm::ShmTransport::default().with_wait(ipcbench_shm::WaitStrategy::Hybrid)
    );
}

mod futex {
    ipcbench_core::conformance_tests!(
        ipcbench_shm::ShmTransport::default().with_wait(ipcbench_shm::WaitStrategy::Futex)
    );
}

mod tiny_ring {
    ipcbench_core::conformance_tests!(ipcbench_shm::ShmTransport::new(
        4096,
        ipcbench_shm::WaitStrategy::Hybrid
    ));
}

mod tiny_ring_spin {
    ipcbench_core::conformance_tests!(ipcbench_shm::ShmTransport::with_capacity(4096));
}
