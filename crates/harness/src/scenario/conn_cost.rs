//! `conn-cost`: what an idle keep-alive connection costs the server, in bytes.
//!
//! The server is the event-loop echo server of `load` (`scenario/echo_server.rs`), so the figure
//! is what that server pays per connection. The measuring process opens connections in steps
//! (0, `step`, 2 x `step`, ... up to `connections`; default step 1000), paced as in
//! [`super::fleet`]. Each new connection carries one request and its echo (so every connection
//! is known to work, and has been through the server's read and write path once), then stays
//! idle. At every step, once the server has accepted them all, it samples (median of three
//! samples 10 ms apart):
//!
//! - the server process's resident set (`VmRSS` of `/proc/<pid>/status`): the user-space cost
//!   of a connection's state in the event loop;
//! - the kernel's slab memory (`Slab` of `/proc/meminfo`): socket, inode, file, dentry and
//!   epoll objects. It is machine-wide, so it counts **both ends** of each connection (the
//!   client's socket lives in the same kernel) and anything else the machine allocates
//!   meanwhile; the fit's residual shows how much that was;
//! - `/proc/net/sockstat`: sockets in use and the pages TCP holds for socket buffers (idle
//!   connections hold almost none).
//!
//! Each series is fitted by least squares against the connection count. Per trial, the figures
//! go to `Trial.extra` (f64): `server_rss_bytes_per_connection`, `server_rss_intercept_bytes`,
//! `server_rss_residual_bytes` (root mean square), `server_rss_r_squared`, the same four for
//! `kernel_slab_*` (both ends), `tcp_mem_bytes_per_connection` (both ends),
//! `sockets_per_connection` (2 for a loopback connection: both ends), and every sample as
//! `point<k>_<field>`. The case's `extra` holds the medians over trials of
//! `server_rss_bytes_per_connection`, `server_rss_intercept_bytes`, `server_rss_residual_bytes`,
//! the same three for `kernel_slab_*`, `tcp_mem_bytes_per_connection` and
//! `sockets_per_connection`: the headline answer to "what does a connection cost the server" is
//! `server_rss_bytes_per_connection` plus about half of `kernel_slab_bytes_per_connection`.

use std::time::{Duration, Instant};

use ipcbench_core::{Channel, Transport};

use crate::plan::Case;
use crate::rusage::Snapshot;
use crate::scenario::load::no_event_loop;
use crate::scenario::processes::{self, MachineLimits, Processes};
use crate::session::{TrialContext, TrialError, TrialOutput, finish_trial};
use crate::{affinity, procstat};
use ipcbench_record::Trial;
use ipcbench_record::stats;
use ipcbench_record::stats::{Fit, least_squares};

/// Connections when the plan names none.
pub const DEFAULT_CONNECTIONS: u64 = 5000;
/// Connections added per step when the plan names no `step`.
pub const DEFAULT_STEP: u64 = 1000;
/// Samples per step (their median is kept).
const SAMPLES: usize = 3;
/// Pause between samples.
const SAMPLE_PAUSE: Duration = Duration::from_millis(10);

/// The figures fitted, by key prefix.
const SERIES: [&str; 4] = ["server_rss", "kernel_slab", "tcp_mem", "sockets"];

/// Runs one `conn-cost` trial over `transport`.
///
/// # Errors
/// [`TrialError::Unsupported`] when the transport has no event-loop capability or the
/// connections cannot fit the open-file limit; [`TrialError::Failed`] otherwise.
pub fn trial<T: Transport + 'static>(
    transport: T,
    case: &Case,
    ctx: &TrialContext<'_>,
) -> Result<TrialOutput, TrialError> {
    transport.event_loop().ok_or_else(|| no_event_loop(transport.name()))?;
    let connections = case.connections.unwrap_or(DEFAULT_CONNECTIONS);
    let step = case.step.unwrap_or(DEFAULT_STEP);
    if step == 0 {
        return Err(TrialError::Unsupported("`step` must be at least 1".into()));
    }
    let layout = processes::layout(case, connections, &MachineLimits::read())?;
    let client_cores = affinity::pin_current_thread(case.placement.client).map_err(TrialError::Failed)?;
    let mut procs = Processes::start(&transport, case, ctx, layout, None)?;
    let applied_options = procs.servers[0].ready.applied_options.clone();
    let server_cores = procs.servers[0].ready.cores_applied.clone();
    let (n_generators, n_servers) = (procs.generators.len(), procs.servers.len());
    let outcome = measure(&mut procs, case.message_bytes as usize, &steps(connections, step));
    let mut trial = match outcome {
        Ok(trial) => {
            let (report, _) = procs.finish()?;
            let mut trial = trial;
            trial.server = Some(report.rusage);
            trial
        }
        Err(e) => return Err(procs.fail(e)),
    };
    trial.extra.insert("client_processes".into(), n_generators as f64);
    trial.extra.insert("server_processes".into(), n_servers as f64);
    Ok(TrialOutput {
        trial,
        applied_options,
        client_cores,
        server_cores,
    })
}

/// The connection counts sampled: 0, step, 2 x step, ..., always ending at `connections`.
pub fn steps(connections: u64, step: u64) -> Vec<u64> {
    let step = step.max(1);
    let mut out: Vec<u64> = (0..=connections / step).map(|k| k * step).collect();
    if out.last() != Some(&connections) {
        out.push(connections);
    }
    out
}

/// One sample of every series.
#[derive(Debug, Clone, Copy)]
struct Point {
    connections: u64,
    values: [f64; SERIES.len()],
}

/// Samples the servers' RSS (summed) and the kernel's figures, median of [`SAMPLES`].
fn sample<C: Channel>(procs: &Processes<C>, connections: u64) -> Result<Point, TrialError> {
    let mut samples: Vec<[f64; SERIES.len()]> = Vec::with_capacity(SAMPLES);
    let page = procstat::page_size() as f64;
    for idx in 0..SAMPLES {
        if idx > 0 {
            std::thread::sleep(SAMPLE_PAUSE);
        }
        let rss = procs.servers_rss()?;
        let slab = procstat::slab_bytes().map_err(TrialError::Failed)?;
        let sockstat = procstat::sockstat().map_err(TrialError::Failed)?;
        samples.push([
            rss as f64,
            slab as f64,
            sockstat.tcp_mem_pages as f64 * page,
            sockstat.sockets_used as f64,
        ]);
    }
    let mut values = [0.0; SERIES.len()];
    for (field, value) in values.iter_mut().enumerate() {
        *value = stats::median(&samples.iter().map(|s| s[field]).collect::<Vec<_>>()).unwrap_or(0.0);
    }
    Ok(Point { connections, values })
}

/// Opens the connections step by step (each carrying one request and its echo), sampling at
/// each step, and fits the series.
fn measure<C: Channel>(procs: &mut Processes<C>, message_bytes: usize, steps: &[u64]) -> Result<Trial, TrialError> {
    let total = steps.last().copied().unwrap_or(0);
    let mut points = Vec::with_capacity(steps.len());
    let usage_start = Snapshot::now();
    let started = Instant::now();
    for &target in steps {
        procs.open_until(target, true)?;
        points.push(sample(procs, target)?);
    }
    let elapsed = started.elapsed();
    let usage = usage_start.until(&Snapshot::now());
    let mut trial = Trial {
        messages: total,
        bytes: total * 2 * message_bytes as u64,
        ..Trial::default()
    };
    finish_trial(&mut trial, elapsed, usage);
    for (name, fit) in fits(&points) {
        let Some(fit) = fit else { continue };
        let per = match name {
            "sockets" => "sockets_per_connection".to_owned(),
            other => format!("{other}_bytes_per_connection"),
        };
        trial.extra.insert(per, fit.slope);
        let unit = if name == "sockets" { "" } else { "_bytes" };
        trial.extra.insert(format!("{name}_intercept{unit}"), fit.intercept);
        trial.extra.insert(format!("{name}_residual{unit}"), fit.residual_rms);
        trial.extra.insert(format!("{name}_r_squared"), fit.r_squared);
    }
    // The range the fit holds for.
    trial.extra.insert(
        "fit_from_connections".into(),
        steps.first().copied().unwrap_or(0) as f64,
    );
    trial.extra.insert("fit_to_connections".into(), total as f64);
    for (k, point) in points.iter().enumerate() {
        trial
            .extra
            .insert(format!("point{k}_connections"), point.connections as f64);
        for (name, value) in SERIES.iter().zip(point.values) {
            let unit = if *name == "sockets" { "_used" } else { "_bytes" };
            trial.extra.insert(format!("point{k}_{name}{unit}"), value);
        }
    }
    Ok(trial)
}

/// The least-squares fit of every series against the connection count.
fn fits(points: &[Point]) -> Vec<(&'static str, Option<Fit>)> {
    SERIES
        .iter()
        .enumerate()
        .map(|(field, name)| {
            let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.connections as f64, p.values[field])).collect();
            (*name, least_squares(&xy))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_start_at_zero_and_end_at_the_total() {
        assert_eq!(steps(3000, 1000), vec![0, 1000, 2000, 3000]);
        assert_eq!(steps(2500, 1000), vec![0, 1000, 2000, 2500]);
        assert_eq!(steps(500, 1000), vec![0, 500]);
        assert_eq!(steps(0, 1000), vec![0]);
    }

    #[test]
    fn every_series_is_fitted_by_name() {
        let points: Vec<Point> = (0..4u64)
            .map(|k| Point {
                connections: k * 1000,
                values: [
                    1e6 + 500.0 * (k * 1000) as f64,
                    2e8 + 4000.0 * (k * 1000) as f64,
                    0.0,
                    18.0 + 2.0 * (k * 1000) as f64,
                ],
            })
            .collect();
        let fitted = fits(&points);
        let slope = |name: &str| fitted.iter().find(|f| f.0 == name).and_then(|f| f.1).map(|f| f.slope);
        assert!((slope("server_rss").unwrap() - 500.0).abs() < 1e-6);
        assert!((slope("kernel_slab").unwrap() - 4000.0).abs() < 1e-6);
        assert!((slope("sockets").unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(slope("tcp_mem"), Some(0.0));
    }
}
