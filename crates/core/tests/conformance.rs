//! The `inproc` baseline passes the same conformance suite as the real transports.
ipcbench_core::conformance_tests!(ipcbench_core::baseline::InprocTransport::default());
