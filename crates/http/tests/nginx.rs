//! h2 -> nginx -> h1 origin, with the nginx from Debian's package; skipped (with the reason
//! printed) only where no nginx binary is installed.

mod common;

use std::time::Duration;

use common::start_origin;
use ipcbench_http::{Client, ClientConfig, HttpError, Nginx, NginxConfig, OriginConfig, Protocol, find_nginx};

fn nginx_or_skip() -> bool {
    match find_nginx() {
        Ok(_) => true,
        Err(HttpError::NginxMissing) => {
            println!("skipped: nginx is not installed");
            false
        }
        Err(e) => panic!("{e:#?}"),
    }
}

#[test]
fn h2_through_nginx_to_an_h1_origin() {
    if !nginx_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(OriginConfig::default());
    let nginx = Nginx::start(&NginxConfig {
        dir: dir.path().to_owned(),
        upstream: origin.address.clone(),
        keepalive: 4,
        ..NginxConfig::default()
    })
    .unwrap();
    let nginx_dir = nginx.dir().to_owned();
    let pid = nginx.pid();
    assert!(!nginx.worker_pids().is_empty(), "a master with one worker");
    let mut client = Client::connect(ClientConfig {
        target: nginx.address(),
        protocol: Protocol::H2,
        connections: 2,
        streams: 4,
        response_bytes: 2048,
        ..ClientConfig::default()
    })
    .unwrap();
    let block = client
        .run(Duration::from_millis(100), Duration::from_millis(400))
        .unwrap();
    assert!(block.n_requests > 0);
    assert_eq!(block.n_errors, 0, "{:?}", block.first_error);
    let cpu = nginx.cpu_time().unwrap();
    println!("nginx {}: {} requests, {cpu:?} CPU", nginx.version(), block.n_requests);
    let totals = client.totals();
    drop(client);
    drop(nginx);
    let origin = origin.finish();
    assert_eq!(
        origin.n_requests, totals.n_requests,
        "no cache: every request reaches the origin"
    );
    assert!(origin.n_connections >= 1);
    assert!(!nginx_dir.exists(), "the guard removes nginx's directory");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the master is gone"
    );
}

#[test]
fn nginx_cache_answers_hot_paths() {
    if !nginx_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let origin = start_origin(OriginConfig::default());
    let nginx = Nginx::start(&NginxConfig {
        dir: dir.path().to_owned(),
        upstream: origin.address.clone(),
        cache: true,
        access_log: false,
        ..NginxConfig::default()
    })
    .unwrap();
    let mut client = Client::connect(ClientConfig {
        target: nginx.address(),
        protocol: Protocol::H2,
        connections: 1,
        streams: 4,
        cache_hit_ratio: 0.9,
        ..ClientConfig::default()
    })
    .unwrap();
    let block = client.run_block(Duration::from_millis(400)).unwrap();
    assert_eq!(block.n_errors, 0, "{:?}", block.first_error);
    assert_eq!(
        block.n_hits + block.n_misses,
        block.n_requests,
        "nginx marks every answer"
    );
    assert!(block.n_hits > block.n_misses);
    let totals = client.totals();
    drop(client);
    drop(nginx);
    assert_eq!(origin.finish().n_requests, totals.n_requests - totals.n_hits);
}
