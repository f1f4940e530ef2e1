//! ipcbench-shm: not written yet.
