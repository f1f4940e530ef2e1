//! ipcbench-report: not written yet.
