//! Origin, relay and client together over loopback: counts and structural facts only, never
//! timing figures (the machine is shared and noisy).

mod common;

use std::time::{Duration, Instant};

use common::{dead_port, start_origin, start_relay};
use ipcbench_http::OriginConfig;
use ipcbench_http::{
    Address, BlockResult, Client, ClientConfig, HttpError, Protocol, Rate, RelayConfig, RequestHeaders, ServerProtocol,
    TlsIdentity,
};

const BLOCK: Duration = Duration::from_millis(300);

fn client(target: &Address, protocol: Protocol) -> ClientConfig {
    ClientConfig {
        target: target.clone(),
        protocol,
        connections: 2,
        streams: 4,
        response_bytes: 512,
        ..ClientConfig::default()
    }
}

fn relay(origin: &Address, front: Protocol, back: Protocol) -> RelayConfig {
    RelayConfig {
        front: front.into(),
        back,
        origin: origin.clone(),
        pool_connections: 2,
        ..RelayConfig::default()
    }
}

fn assert_clean(block: &BlockResult) {
    assert!(block.n_requests > 0, "no requests answered");
    assert_eq!(block.n_errors, 0, "errors: {:?}", block.first_error);
    assert_eq!(block.latency_ns.len(), block.n_requests);
    assert_eq!(block.latency_corrected_ns.len(), block.n_requests);
}

/// Runs client -> relay -> origin and checks that the three sides' counts agree.
fn relayed(front: Protocol, back: Protocol, hit_ratio: f64) {
    let origin = start_origin(OriginConfig::default());
    let relay_config = relay(&origin.address, front, back);
    let pool = relay_config.pool_connections as u64;
    let relay = start_relay(relay_config);
    let mut client = Client::connect(ClientConfig {
        cache_hit_ratio: hit_ratio,
        ..client(&relay.address, front)
    })
    .unwrap();
    let block = client.run(Duration::from_millis(100), BLOCK).unwrap();
    assert_clean(&block);
    let totals = client.totals();
    drop(client);
    let relay = relay.finish();
    let origin = origin.finish();
    assert_eq!(relay.n_requests_in, totals.n_requests);
    assert_eq!(relay.n_cache_hits, totals.n_hits);
    assert_eq!(relay.n_requests_out, relay.n_requests_in - relay.n_cache_hits);
    assert_eq!(origin.n_requests, totals.n_requests - totals.n_hits);
    assert_eq!(origin.n_requests, relay.n_requests_out);
    assert_eq!(relay.n_upstream_errors, 0);
    assert!(relay.n_upstream_connections >= 1);
    assert!(
        relay.n_upstream_connections <= pool,
        "{} upstream connections with a pool of {pool}",
        relay.n_upstream_connections
    );
    assert_eq!(relay.pool_wait_ns.len(), relay.n_requests_out);
    assert!(relay.back_wire.total_bytes() > 0 && relay.front_wire.total_bytes() > 0);
    assert_eq!(origin.n_connections, relay.n_upstream_connections);
}

#[test]
fn h1_to_h1_counts_agree() {
    relayed(Protocol::H1, Protocol::H1, 0.5);
}

#[test]
fn h2_to_h1_counts_agree() {
    relayed(Protocol::H2, Protocol::H1, 0.5);
}

#[test]
fn h2_to_h2_counts_agree() {
    relayed(Protocol::H2, Protocol::H2, 0.0);
}

#[test]
fn direct_h1_and_h2_reach_the_origin() {
    let origin = start_origin(OriginConfig::default());
    let mut total = 0;
    for protocol in [Protocol::H1, Protocol::H2] {
        let mut client = Client::connect(client(&origin.address, protocol)).unwrap();
        let block = client.run_block(BLOCK).unwrap();
        assert_clean(&block);
        assert_eq!(block.n_hits + block.n_misses, 0, "the origin marks no cache state");
        total += client.totals().n_requests;
    }
    let origin = origin.finish();
    assert_eq!(origin.n_requests, total);
    assert_eq!(origin.n_connections, 4, "two keep-alive connections per client");
}

#[test]
fn repeated_blocks_reuse_connections() {
    let origin = start_origin(OriginConfig::default());
    for protocol in [Protocol::H1, Protocol::H2] {
        let mut client = Client::connect(client(&origin.address, protocol)).unwrap();
        for _ in 0..3 {
            let block = client.run_block(Duration::from_millis(100)).unwrap();
            assert_clean(&block);
            assert_eq!(block.n_connections_opened, 0);
        }
        assert_eq!(client.totals().n_connections_opened, 2);
    }
}

#[test]
fn h2_sends_repeated_headers_in_far_fewer_wire_bytes() {
    let origin = start_origin(OriginConfig::default());
    let per_request = |protocol| {
        let mut client = Client::connect(ClientConfig {
            request_headers: RequestHeaders {
                count: 12,
                value_bytes: 64,
            },
            response_bytes: 16,
            connections: 1,
            streams: 1,
            ..client(&origin.address, protocol)
        })
        .unwrap();
        let block = client.run_block(BLOCK).unwrap();
        assert_clean(&block);
        assert!(block.n_requests >= 20, "too few requests to amortize the handshake");
        (
            block.wire.written_bytes as f64 / block.n_requests as f64,
            block.wire_bytes_per_request(),
        )
    };
    let (h1_sent, h1_total) = per_request(Protocol::H1);
    let (h2_sent, h2_total) = per_request(Protocol::H2);
    println!("request bytes: h1 {h1_sent:.0}, h2 {h2_sent:.0}; wire bytes: h1 {h1_total:.0}, h2 {h2_total:.0}");
    assert!(h1_sent > 12.0 * 64.0, "h1 sends every header as text");
    assert!(h2_sent < h1_sent / 4.0, "HPACK indexes repeated headers");
    assert!(h2_total < h1_total / 2.0);
}

#[test]
fn tls_negotiates_h2_and_h1_by_alpn() {
    let identity = TlsIdentity::generate().unwrap();
    let origin = start_origin(OriginConfig {
        protocol: ServerProtocol::Auto,
        tls: Some(identity.clone()),
        ..OriginConfig::default()
    });
    for protocol in [Protocol::H2, Protocol::H1] {
        let mut client = Client::connect(ClientConfig {
            tls: Some(identity.client()),
            ..client(&origin.address, protocol)
        })
        .unwrap();
        let block = client.run_block(BLOCK).unwrap();
        assert_clean(&block);
        assert_eq!(
            client.totals().n_tls_handshakes,
            2,
            "{protocol}: one handshake per connection"
        );
        assert_eq!(block.n_tls_handshakes, 0, "keep-alive: no handshake during the block");
    }
}

#[test]
fn tls_relay_front_serves_h2() {
    let identity = TlsIdentity::generate().unwrap();
    let origin = start_origin(OriginConfig::default());
    let relay = start_relay(RelayConfig {
        tls: Some(identity.clone()),
        ..relay(&origin.address, Protocol::H2, Protocol::H1)
    });
    let mut client = Client::connect(ClientConfig {
        tls: Some(identity.client()),
        ..client(&relay.address, Protocol::H2)
    })
    .unwrap();
    assert_clean(&client.run_block(BLOCK).unwrap());
}

#[test]
fn alpn_mismatch_is_a_clear_error() {
    let identity = TlsIdentity::generate().unwrap();
    let origin = start_origin(OriginConfig {
        protocol: ServerProtocol::H1,
        tls: Some(identity.clone()),
        ..OriginConfig::default()
    });
    let error = Client::connect(ClientConfig {
        tls: Some(identity.client()),
        ..client(&origin.address, Protocol::H2)
    })
    .unwrap_err();
    assert!(
        matches!(error, HttpError::Alpn { .. } | HttpError::TlsHandshake { .. }),
        "{error:?}"
    );
}

#[test]
fn without_keep_alive_every_request_pays_a_handshake() {
    let identity = TlsIdentity::generate().unwrap();
    let origin = start_origin(OriginConfig {
        tls: Some(identity.clone()),
        ..OriginConfig::default()
    });
    for protocol in [Protocol::H1, Protocol::H2] {
        let mut client = Client::connect(ClientConfig {
            tls: Some(identity.client()),
            keep_alive: false,
            ..client(&origin.address, protocol)
        })
        .unwrap();
        let block = client.run_block(BLOCK).unwrap();
        assert_clean(&block);
        assert_eq!(block.n_connections_opened, block.n_requests, "{protocol}");
        assert_eq!(block.n_tls_handshakes, block.n_requests, "{protocol}");
    }
    let origin = origin.finish();
    assert_eq!(
        origin.n_connections,
        origin.n_requests + 2,
        "one probe connection per client"
    );
}

#[test]
fn mostly_hits_at_ratio_0_9_and_the_miss_penalty_shows() {
    // The origin's 50 ms pause is the known answer: a miss waits for it, a hit never does.
    let origin = start_origin(OriginConfig {
        response_delay: Duration::from_millis(50),
        ..OriginConfig::default()
    });
    let relay = start_relay(relay(&origin.address, Protocol::H2, Protocol::H1));
    let mut client = Client::connect(ClientConfig {
        cache_hit_ratio: 0.9,
        streams: 16,
        ..client(&relay.address, Protocol::H2)
    })
    .unwrap();
    let block = client.run_block(Duration::from_millis(800)).unwrap();
    assert_clean(&block);
    assert_eq!(
        block.n_hits + block.n_misses,
        block.n_requests,
        "the relay marks every answer"
    );
    let hit_share = block.n_hits as f64 / block.n_requests as f64;
    assert!(block.n_requests >= 60, "only {} requests", block.n_requests);
    assert!(hit_share > 0.75, "hit share {hit_share}");
    assert!(block.n_misses > 0);
    let hit_p50 = block.hit_latency_ns.value_at_quantile(0.5);
    let miss_p50 = block.miss_latency_ns.value_at_quantile(0.5);
    println!("hit p50 {hit_p50} ns, miss p50 {miss_p50} ns, hit share {hit_share:.3}");
    assert!(miss_p50 >= 50_000_000, "a miss includes the origin's pause");
    assert!(
        miss_p50 > hit_p50,
        "miss penalty {} ns",
        miss_p50 as i64 - hit_p50 as i64
    );
}

#[test]
fn open_loop_records_corrected_at_least_raw() {
    let origin = start_origin(OriginConfig::default());
    let mut client = Client::connect(ClientConfig {
        rate: Rate::PerConnection(200.0),
        ..client(&origin.address, Protocol::H2)
    })
    .unwrap();
    let block = client.run_block(Duration::from_millis(500)).unwrap();
    assert_clean(&block);
    assert_eq!(block.n_requests + block.n_errors + block.n_unsent, block.n_scheduled);
    // 2 connections x 200/s x 0.5 s, give or take the random phase.
    assert!(
        (198..=202).contains(&block.n_scheduled),
        "{} scheduled",
        block.n_scheduled
    );
    for q in [0.0, 0.5, 0.99, 1.0] {
        assert!(block.latency_corrected_ns.value_at_quantile(q) >= block.latency_ns.value_at_quantile(q));
    }
}

#[test]
fn relay_reaches_the_origin_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("origin.sock");
    let origin = start_origin(OriginConfig {
        listen: Address::Unix(path.clone()),
        ..OriginConfig::default()
    });
    for back in [Protocol::H1, Protocol::H2] {
        let relay = start_relay(relay(&origin.address, Protocol::H2, back));
        let mut client = Client::connect(client(&relay.address, Protocol::H2)).unwrap();
        assert_clean(&client.run_block(BLOCK).unwrap());
        drop(client);
        assert!(relay.finish().n_requests_out > 0);
    }
    drop(origin);
    assert!(!path.exists(), "the socket file is removed");
}

#[test]
fn unreachable_target_errors_within_seconds() {
    for protocol in [Protocol::H1, Protocol::H2] {
        let started = Instant::now();
        let error = Client::connect(client(&Address::localhost(dead_port()), protocol)).unwrap_err();
        assert!(matches!(error, HttpError::Connect { .. }), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}

#[test]
fn silent_target_errors_within_seconds() {
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = Address::Tcp(listener.local_addr().unwrap());
    for protocol in [Protocol::H1, Protocol::H2] {
        let started = Instant::now();
        let config = ClientConfig {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
            drain_limit: Duration::from_millis(200),
            ..client(&target, protocol)
        };
        let outcome = Client::connect(config).and_then(|mut c| c.run_block(Duration::from_millis(200)));
        let error = outcome.unwrap_err();
        assert!(
            matches!(error, HttpError::AllFailed { .. } | HttpError::Timeout { .. }),
            "{protocol}: {error:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{protocol}: took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn bad_input_is_rejected_before_anything_runs() {
    let target = Address::localhost(1);
    let bad = [
        ClientConfig {
            cache_hit_ratio: 1.5,
            ..client(&target, Protocol::H1)
        },
        ClientConfig {
            connections: 0,
            ..client(&target, Protocol::H1)
        },
        ClientConfig {
            rate: Rate::PerConnection(0.0),
            ..client(&target, Protocol::H1)
        },
    ];
    for config in bad {
        assert!(matches!(config.validate(), Err(HttpError::InvalidConfig(_))));
    }
    let relay_config = RelayConfig {
        pool_connections: 0,
        ..relay(&target, Protocol::H2, Protocol::H1)
    };
    assert!(matches!(
        ipcbench_http::Relay::bind(relay_config),
        Err(HttpError::InvalidConfig(_))
    ));
    assert!("h3".parse::<Protocol>().is_err());
    assert!("10.0.0.1:80".parse::<Address>().is_err(), "only loopback");
    assert_eq!(
        "unix:/tmp/x.sock".parse::<Address>().unwrap().to_string(),
        "unix:/tmp/x.sock"
    );
}
