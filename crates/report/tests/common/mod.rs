//! Hand-built run records for the report tests: deterministic figures and histograms from
//! fixed seeds, no timing.
#![allow(dead_code)]

use std::collections::BTreeMap;

use ipcbench_record::stats::{self, SplitMix64};
use ipcbench_record::{
    CaseRecord, ClockInfo, Environment, Percentiles, Placement, RunRecord, Rusage, SCHEMA, Status, Summary, Trial,
};

/// A record holding `cases`, on a fixed imaginary machine.
pub fn record(name: &str, cases: Vec<CaseRecord>) -> RunRecord {
    RunRecord {
        schema: SCHEMA.to_owned(),
        name: name.to_owned(),
        started_at: "2026-01-02T03:04:05Z".to_owned(),
        finished_at: "2026-01-02T03:09:10Z".to_owned(),
        config: serde_json::json!({"name": name}),
        config_source: "bench-configs/test.toml".to_owned(),
        config_sha256: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".to_owned(),
        environment: Environment {
            hostname: "testhost".to_owned(),
            cpu_model: "Example CPU 9000".to_owned(),
            cores: 8,
            kernel: "6.1.0-test".to_owned(),
            os: "linux x86_64".to_owned(),
            virtualization: Some("kvm".to_owned()),
            clock_source: Some("tsc".to_owned()),
            governor: Some("performance".to_owned()),
            load_average_1m: 0.12,
            memory_bytes: 16 << 30,
            open_files_limit: 1024,
            rustc_version: "rustc 1.90.0".to_owned(),
            ipcbench_version: "0.1.0".to_owned(),
            git_commit: Some("abcdef123456".to_owned()),
        },
        clock: ClockInfo {
            source: "CLOCK_MONOTONIC via std::time::Instant".to_owned(),
            overhead_ns: 20.0,
            resolution_ns: 10.0,
            null_floor_ns: 40.0,
        },
        calibration: None,
        warnings: vec!["running under virtualization (kvm): cross-core wake-ups differ from bare metal".to_owned()],
        interrupted: false,
        cases,
        paired: None,
        agents: Vec::new(),
    }
}

fn empty_case(scenario: &str, transport: &str, options: Option<&str>, size: u64, same_core: bool) -> CaseRecord {
    let label = if same_core { "same-core" } else { "cross-core" };
    let server = if same_core { 0 } else { 1 };
    let options_part = options.map(|o| format!("[{o}]")).unwrap_or_default();
    let id = format!("{scenario}/{transport}{options_part}/{size}B/c0s{server}");
    CaseRecord {
        reply_bytes: (scenario != "stream").then_some(size),
        total_bytes: (scenario == "stream").then_some(64 << 20),
        cores: Placement {
            client: 0,
            server: Some(server),
            label: label.to_owned(),
            client_applied: vec![0],
            server_applied: vec![server],
        },
        ..CaseRecord::skeleton(&id, scenario, transport, size)
    }
}

fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// One trial: `n` latencies around `base_ns` with a long tail, from a seeded generator.
fn latency_trial(seed: u64, base_ns: f64, n: usize, bytes_per_message: u64) -> Trial {
    let mut rng = SplitMix64::new(seed);
    let mut histogram = stats::new_histogram();
    let mut total = 0.0;
    for _ in 0..n {
        // Mostly near the base, with a power-law tail reaching ~1000x.
        let u = rng.unit();
        let tail = (1.0 - u).powf(-0.75).min(1000.0);
        let v = base_ns * (0.9 + 0.2 * rng.unit()) * tail;
        total += v;
        stats::record(&mut histogram, v.round().max(1.0) as u64).unwrap();
    }
    let elapsed_ns = total.round() as u64;
    let messages = n as u64;
    let bytes = messages * bytes_per_message;
    let cpu = (total * 0.8) as u64;
    Trial {
        latency_ns: stats::percentiles(&histogram),
        latency_corrected_ns: None,
        messages,
        bytes,
        elapsed_ns,
        messages_per_s: messages as f64 / (elapsed_ns as f64 * 1e-9),
        bytes_per_s: bytes as f64 / (elapsed_ns as f64 * 1e-9),
        client: Some(Rusage {
            user_ns: cpu / 4,
            system_ns: cpu / 4,
            voluntary_csw: messages,
            involuntary_csw: 3,
            max_rss_bytes: 8 << 20,
        }),
        server: Some(Rusage {
            user_ns: cpu / 4,
            system_ns: cpu / 4,
            voluntary_csw: messages,
            involuntary_csw: 2,
            max_rss_bytes: 8 << 20,
        }),
        histogram_v2: Some(stats::encode_histogram(&histogram)),
        histogram_corrected_v2: None,
        extra: BTreeMap::new(),
    }
}

/// The headline figures over `case.trials`, as the runner computes them.
// `..Default::default()` sets nothing today; it keeps the fixtures compiling when the record
// schema gains a field.
#[allow(clippy::needless_update)]
pub fn summarize(case: &mut CaseRecord) {
    let trials = &case.trials;
    if trials.is_empty() {
        case.summary = None;
        return;
    }
    let latency: Vec<Percentiles> = trials.iter().filter_map(|t| t.latency_ns).collect();
    let corrected: Vec<Percentiles> = trials.iter().filter_map(|t| t.latency_corrected_ns).collect();
    let cpu = |t: &Trial| (t.client.unwrap_or_default().cpu_ns() + t.server.unwrap_or_default().cpu_ns()) as f64;
    let per_message: Vec<f64> = trials.iter().map(|t| cpu(t) / t.messages.max(1) as f64).collect();
    let per_byte: Vec<f64> = trials.iter().map(|t| cpu(t) / t.bytes.max(1) as f64).collect();
    let messages_per_s: Vec<f64> = trials.iter().map(|t| t.messages_per_s).collect();
    let bytes_per_s: Vec<f64> = trials.iter().map(|t| t.bytes_per_s).collect();
    let mut ci95 = BTreeMap::new();
    let mut interval = |name: &str, values: Vec<f64>| {
        if let Some(ci) = stats::bootstrap_median_ci(&values) {
            ci95.insert(name.to_owned(), ci);
        }
    };
    interval("latency_p50_ns", latency.iter().map(|p| p.p50).collect());
    interval("latency_p99_ns", latency.iter().map(|p| p.p99).collect());
    interval("messages_per_s", messages_per_s.clone());
    interval("bytes_per_s", bytes_per_s.clone());
    interval("cpu_ns_per_message", per_message.clone());
    case.summary = Some(Summary {
        latency_ns: stats::median_percentiles(&latency),
        latency_corrected_ns: stats::median_percentiles(&corrected),
        messages_per_s: stats::median(&messages_per_s).unwrap_or(0.0),
        bytes_per_s: stats::median(&bytes_per_s).unwrap_or(0.0),
        cpu_ns_per_message: stats::median(&per_message),
        cpu_ns_per_byte: stats::median(&per_byte),
        client_cpu_ns_per_byte: stats::median(&per_byte).map(|v| v / 2.0),
        server_cpu_ns_per_byte: stats::median(&per_byte).map(|v| v / 2.0),
        fraction_of_limit: None,
        ci95,
        n_trials: trials.len(),
        ..Default::default()
    });
}

/// A completed pingpong case with 3 trials of 2000 round trips around `base_ns`.
pub fn pingpong(transport: &str, options: Option<&str>, size: u64, same_core: bool, base_ns: f64) -> CaseRecord {
    let mut case = empty_case("pingpong", transport, options, size, same_core);
    let seed = seed_of(&case.id);
    case.trials = (0..3)
        .map(|i| latency_trial(seed + i, base_ns * (1.0 + 0.02 * i as f64), 2000, 2 * size))
        .collect();
    summarize(&mut case);
    case
}

/// A completed stream case moving `bytes_per_s` (3 trials, no latency histogram).
pub fn stream(transport: &str, size: u64, same_core: bool, bytes_per_s: f64) -> CaseRecord {
    let mut case = empty_case("stream", transport, None, size, same_core);
    case.trials = (0..3)
        .map(|i| {
            let rate = bytes_per_s * (1.0 + 0.03 * (i as f64 - 1.0));
            let bytes = 64u64 << 20;
            let elapsed_ns = (bytes as f64 / rate * 1e9) as u64;
            let messages = bytes / size.max(1);
            let cpu = elapsed_ns;
            Trial {
                messages,
                bytes,
                elapsed_ns,
                messages_per_s: messages as f64 / (elapsed_ns as f64 * 1e-9),
                bytes_per_s: bytes as f64 / (elapsed_ns as f64 * 1e-9),
                client: Some(Rusage {
                    user_ns: cpu / 3,
                    system_ns: cpu / 2,
                    ..Default::default()
                }),
                server: Some(Rusage {
                    user_ns: cpu / 3,
                    system_ns: cpu / 2,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    summarize(&mut case);
    case
}

/// A completed rpc case: `window` requests in flight over a link with `delay_ms` added each
/// way; throughput follows the bandwidth-delay bound up to a 1 GB/s ceiling.
pub fn rpc(transport: &str, size: u64, window: u64, delay_ms: f64, store_rtt: bool) -> CaseRecord {
    let mut case = empty_case("rpc", transport, None, size, false);
    case.window = Some(window);
    case.delay_ms = Some(delay_ms);
    case.id = format!("rpc/{transport}/{size}B/w{window}/d{delay_ms}ms/c0s1");
    let rtt_ns = 2.0 * delay_ms * 1e6 + 30_000.0;
    let rate = (window as f64 * size as f64 / (rtt_ns * 1e-9)).min(1e9) * 0.9;
    case.trials = (0..3)
        .map(|i| {
            let mut trial = latency_trial(seed_of(&case.id) + i, rtt_ns, 500, size);
            trial.bytes_per_s = rate * (1.0 + 0.01 * i as f64);
            trial.messages_per_s = trial.bytes_per_s / size as f64;
            if store_rtt {
                trial.extra.insert("rtt_ns".to_owned(), rtt_ns);
            }
            trial
        })
        .collect();
    summarize(&mut case);
    case
}

/// A case that failed after one completed trial.
pub fn failed(transport: &str, size: u64) -> CaseRecord {
    let mut case = pingpong(transport, None, size, false, 9_000.0);
    case.trials.truncate(1);
    summarize(&mut case);
    case.status = Status::Failed;
    case.reason = Some("peer exited with status 1: checksum mismatch in message 17, \"seq\" 16".to_owned());
    case
}

/// A case the transport cannot run.
pub fn unsupported(transport: &str, size: u64) -> CaseRecord {
    let mut case = empty_case("pingpong", transport, Some("wait=spin"), size, true);
    case.status = Status::Unsupported;
    case.reason = Some("spin waits on a shared core would measure the scheduler, not the transport".to_owned());
    case
}

/// Every transport and both placements at 64 B and 4 KiB, plus a failed and an unsupported
/// case: the shape of the smoke plan.
pub fn many() -> RunRecord {
    let mut cases = Vec::new();
    for (i, transport) in ["tcp", "uds", "pipe", "shm", "inproc"].iter().enumerate() {
        for size in [64u64, 4096] {
            for same_core in [false, true] {
                let base =
                    2_000.0 * (i as f64 + 1.0) * if same_core { 1.5 } else { 1.0 } * (1.0 + size as f64 / 8192.0);
                cases.push(pingpong(transport, None, size, same_core, base));
            }
        }
    }
    cases.push(pingpong("shm", Some("wait=futex"), 64, false, 5_000.0));
    cases.push(failed("pipe", 1 << 20));
    cases.push(unsupported("shm", 64));
    let mut record = record("many", cases);
    record.calibration = Some(ipcbench_record::Calibration {
        cache_line_round_trip_ns: Some(180.0),
        cache_line_cores: Some([0, 1]),
        two_line_round_trip_ns: Some(400.0),
        memcpy_bytes_per_s: Some(1.2e10),
    });
    record
}

/// One transport swept over every power of two from 1 B to 4 MiB.
pub fn sweep() -> RunRecord {
    let cases = (0..=22)
        .map(|e| {
            let size = 1u64 << e;
            pingpong("uds", None, size, false, 3_000.0 + size as f64 * 0.25)
        })
        .collect();
    record("sweep", cases)
}

/// A stream sweep for two transports.
pub fn streams() -> RunRecord {
    let mut cases = Vec::new();
    for (transport, peak) in [("tcp", 3e9), ("shm", 9e9)] {
        for e in [10u32, 12, 14, 16, 18, 20] {
            let size = 1u64 << e;
            let rate = peak * (size as f64 / (size as f64 + 16_384.0));
            cases.push(stream(transport, size, false, rate));
        }
    }
    let mut record = record("streams", cases);
    record.calibration = Some(ipcbench_record::Calibration {
        cache_line_round_trip_ns: Some(180.0),
        cache_line_cores: Some([0, 1]),
        two_line_round_trip_ns: Some(400.0),
        memcpy_bytes_per_s: Some(1.2e10),
    });
    record
}

/// An rpc sweep: windows 1..64 at three delays, one delay without a stored RTT.
pub fn rpcs() -> RunRecord {
    let mut cases = Vec::new();
    for delay in [0.0, 1.0, 10.0] {
        for window in [1u64, 2, 4, 8, 16, 32, 64] {
            cases.push(rpc("tcp", 16_384, window, delay, delay != 10.0));
        }
    }
    record("rpcs", cases)
}

/// A completed load case: `connections` at `rate_hz` each; latency grows with the load, and
/// the corrected latency (from the intended send time) is higher still.
pub fn load(transport: &str, connections: u64, rate_hz: f64) -> CaseRecord {
    let mut case = empty_case("load", transport, None, 256, false);
    case.connections = Some(connections);
    case.rate_per_connection_hz = Some(rate_hz);
    case.id = format!("load/{transport}/256B/c{connections}/r{rate_hz}Hz/c0s1");
    let base = 20_000.0 * (1.0 + connections as f64 * rate_hz / 20_000.0);
    case.trials = (0..3)
        .map(|i| {
            let mut trial = latency_trial(seed_of(&case.id) + i, base, 1000, 512);
            let scale = |p: Percentiles, f: f64| Percentiles {
                min: p.min * f,
                p50: p.p50 * f,
                p90: p.p90 * f,
                p99: p.p99 * f,
                p999: p.p999 * f,
                p9999: p.p9999 * f,
                max: p.max * f,
                mean: p.mean * f,
                stdev: p.stdev * f,
            };
            trial.latency_corrected_ns = trial.latency_ns.map(|p| scale(p, 1.4));
            trial
        })
        .collect();
    summarize(&mut case);
    case
}

/// The many-clients plan's shape: two transports, 1,000 to 10,000 connections at 5 Hz.
pub fn loads() -> RunRecord {
    let mut cases = Vec::new();
    for transport in ["tcp", "uds"] {
        for connections in [1000, 2000, 5000, 10000] {
            cases.push(load(transport, connections, 5.0));
        }
    }
    record("loads", cases)
}

/// A conn-cost case: memory sampled at 0..=400 connections in steps of 100, growing by
/// `rss_per_connection` (server) and `slab_per_connection` (kernel) bytes per connection.
pub fn conn_cost(transport: &str, same_core: bool, rss_per_connection: f64, slab_per_connection: f64) -> CaseRecord {
    let mut case = empty_case("conn-cost", transport, None, 64, same_core);
    case.connections = Some(400);
    case.id = format!("conn-cost/{transport}/64B/c400/c0s{}", u8::from(!same_core));
    case.trials = (0..3)
        .map(|i| {
            let mut rng = SplitMix64::new(seed_of(&case.id) + i);
            let mut extra = BTreeMap::new();
            for k in 0..5u32 {
                let n = f64::from(k * 100);
                let noise = |rng: &mut SplitMix64| (rng.unit() - 0.5) * 8192.0;
                extra.insert(format!("point{k}_connections"), n);
                extra.insert(
                    format!("point{k}_server_rss_bytes"),
                    5e6 + n * rss_per_connection + noise(&mut rng),
                );
                extra.insert(
                    format!("point{k}_kernel_slab_bytes"),
                    4e8 + n * slab_per_connection + noise(&mut rng),
                );
            }
            for (field, slope, intercept) in [
                ("server_rss", rss_per_connection, 5e6),
                ("kernel_slab", slab_per_connection, 4e8),
            ] {
                extra.insert(format!("{field}_bytes_per_connection"), slope);
                extra.insert(format!("{field}_intercept_bytes"), intercept);
            }
            Trial {
                messages: 400,
                bytes: 400 * 128,
                elapsed_ns: 50_000_000,
                messages_per_s: 8000.0,
                bytes_per_s: 1_024_000.0,
                extra,
                ..Default::default()
            }
        })
        .collect();
    summarize(&mut case);
    case.extra.insert(
        "server_rss_bytes_per_connection".to_owned(),
        serde_json::json!(rss_per_connection),
    );
    case.extra.insert(
        "kernel_slab_bytes_per_connection".to_owned(),
        serde_json::json!(slab_per_connection),
    );
    case
}

/// The conn-cost plan's shape: tcp and uds, both placements.
pub fn conn_costs() -> RunRecord {
    record(
        "conn-costs",
        vec![
            conn_cost("tcp", false, 250.0, 6000.0),
            conn_cost("tcp", true, 245.0, 6100.0),
            conn_cost("uds", false, 115.0, 3000.0),
            conn_cost("uds", true, 118.0, 3100.0),
        ],
    )
}

/// An http case of `path` (`h2->h1`): latency trials plus the case-level figures
/// `finish_http` stores, scaled so paths and sizes differ.
pub fn http(front: &str, back: &str, size: u64, hit_ratio: f64) -> CaseRecord {
    let mut case = empty_case("http", "tcp", None, size, false);
    case.connections = Some(4);
    case.id = format!("http/tcp/{size}B/c4/front={front}/back={back}/hit{hit_ratio}/pool4/hdr16x128/closed/c0s1");
    let scale = if front == "h2" { 3.0 } else { 1.0 } * (1.0 + size as f64 / 65536.0);
    case.trials = (0..3)
        .map(|i| latency_trial(seed_of(&case.id) + i, 100_000.0 * scale, 1000, 512))
        .collect();
    summarize(&mut case);
    let wire_front = if front == "h2" { 1300.0 } else { 3560.0 } + size as f64;
    let wire_back = if back == "h2" { 1300.0 } else { 3560.0 } + size as f64;
    let figures = [
        ("hop_added_p50_ns", 200_000.0 * scale),
        ("hop_added_p50_ns_lo", 150_000.0 * scale),
        ("hop_added_p50_ns_hi", 260_000.0 * scale),
        (
            "hop_added_p99_ns",
            550_000.0 * scale - if hit_ratio > 0.0 { 900_000.0 } else { 0.0 },
        ),
        ("relay_cpu_ns_per_request", 45_000.0 * scale),
        ("front_wire_bytes_per_request", wire_front),
        ("back_wire_bytes_per_request", wire_back),
        ("direct_wire_bytes_per_request", wire_front),
        ("requests_per_s_in", 8000.0 / scale),
        ("requests_per_s_out", 8000.0 / scale * (1.0 - hit_ratio)),
        ("upstream_connections", 4.0),
    ];
    for (key, value) in figures {
        case.extra.insert(key.to_owned(), value.into());
    }
    case.extra.insert("front".into(), front.into());
    case.extra.insert("back".into(), back.into());
    case.extra.insert("path".into(), format!("{front}->{back}").into());
    case.extra.insert("relay".into(), "builtin".into());
    case.extra.insert("cache_hit_ratio".into(), hit_ratio.into());
    case
}

/// The http-proxy preset's shape: three paths, two sizes, two hit ratios.
pub fn https() -> RunRecord {
    let mut cases = Vec::new();
    for (front, back) in [("h1", "h1"), ("h2", "h1"), ("h2", "h2")] {
        for size in [1024, 65536] {
            for hit_ratio in [0.0, 0.9] {
                cases.push(http(front, back, size, hit_ratio));
            }
        }
    }
    record("https", cases)
}
