//! `ipcbench-pipe` against the shared conformance suite, with default and 1 MiB pipes.
#![cfg(unix)]

ipcbench_core::conformance_tests!(ipcbench_pipe::PipeTransport::default());

/// 1 MiB pipes (Linux's default `fs.pipe-max-size`): the largest messages still span several.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod large_pipes {
    ipcbench_core::conformance_tests!(ipcbench_pipe::PipeTransport {
        pipe_buffer_bytes: Some(1 << 20),
    });
}

/// One-page pipes: every frame header and body crosses many full pipes.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod small_pipes {
    ipcbench_core::conformance_tests!(ipcbench_pipe::PipeTransport {
        pipe_buffer_bytes: Some(4096),
    });
}
