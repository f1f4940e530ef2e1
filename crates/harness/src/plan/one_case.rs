//! One expanded case written back as a plan file: what a paired run (`ipcbench ci --against`)
//! hands to each side's binary, so an older binary that knows only plans can run it.
//!
//! The text uses only keys a plan has always had (no command-line flags), and it is checked by
//! parsing it back: the one case it expands to must be the case it was written from.

use toml::{Table, Value};

use super::case::{BalanceOptions, Case, FleetOptions};
use super::kinds::{Convert, HttpCase, HttpRelay, HttpVersion, ScenarioKind, TransportSettings};
use super::parse::{Overrides, Plan};
use super::units::Amount;

fn duration_text(d: std::time::Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

fn int(n: u64) -> Value {
    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

fn buffer(bytes: Option<u64>) -> Value {
    bytes.map_or_else(|| Value::String("default".into()), int)
}

fn name_of<T: serde::Serialize>(value: &T) -> Value {
    Value::try_from(value).unwrap_or_else(|_| Value::String(String::new()))
}

/// The `[transport.<kind>]` options of `settings`.
fn transport_table(settings: &TransportSettings) -> Table {
    let mut t = Table::new();
    match *settings {
        TransportSettings::Tcp {
            nodelay,
            send_buffer_bytes,
            recv_buffer_bytes,
            ..
        } => {
            t.insert("nodelay".into(), Value::Boolean(nodelay));
            t.insert("send_buffer_bytes".into(), buffer(send_buffer_bytes));
            t.insert("recv_buffer_bytes".into(), buffer(recv_buffer_bytes));
        }
        TransportSettings::Uds {
            kind,
            address,
            send_buffer_bytes,
            recv_buffer_bytes,
        } => {
            t.insert("kind".into(), name_of(&kind));
            t.insert("address".into(), name_of(&address));
            t.insert("send_buffer_bytes".into(), buffer(send_buffer_bytes));
            t.insert("recv_buffer_bytes".into(), buffer(recv_buffer_bytes));
        }
        TransportSettings::Pipe { pipe_buffer_bytes } => {
            t.insert("pipe_buffer_bytes".into(), buffer(pipe_buffer_bytes));
        }
        TransportSettings::Shm { ring_bytes, wait } => {
            t.insert("ring_bytes".into(), int(ring_bytes));
            t.insert("wait".into(), name_of(&wait));
        }
        TransportSettings::Inproc { delay_ns } | TransportSettings::Null { delay_ns } => {
            t.insert("delay_ns".into(), int(delay_ns));
        }
    }
    t
}

/// The keys of an `http` case.
fn http_keys(http: &HttpCase, scenario: &mut Table) {
    let version = |v: HttpVersion| Value::Array(vec![Value::String(v.as_str().into())]);
    scenario.insert("front".into(), version(http.front));
    scenario.insert("back".into(), version(http.back));
    scenario.insert("tls".into(), Value::Boolean(http.tls));
    if http.front == HttpVersion::H2 {
        scenario.insert("streams".into(), int(http.streams.into()));
    }
    scenario.insert("keep_alive".into(), Value::Boolean(http.keep_alive));
    scenario.insert("pool_connections".into(), int(http.pool_connections.into()));
    scenario.insert(
        "cache_hit_ratio".into(),
        Value::Array(vec![Value::Float(http.cache_hit_ratio)]),
    );
    let mut headers = Table::new();
    headers.insert("count".into(), int(http.request_headers.into()));
    headers.insert("value_bytes".into(), int(http.header_value_bytes.into()));
    scenario.insert("request_headers".into(), Value::Table(headers));
    scenario.insert(
        "rate".into(),
        http.rate_hz.map_or_else(|| Value::String("max".into()), Value::Float),
    );
    if http.back_uds {
        scenario.insert("back_transport".into(), Value::String("uds".into()));
    }
    match &http.relay {
        HttpRelay::BuiltIn => {}
        HttpRelay::Nginx => {
            scenario.insert("relay".into(), Value::String("nginx".into()));
        }
        HttpRelay::External {
            address,
            pid,
            origin_listen,
        } => {
            scenario.insert("relay".into(), Value::String(address.clone()));
            scenario.insert("origin_listen".into(), Value::String(origin_listen.clone()));
            if let Some(pid) = pid {
                scenario.insert("relay_pid".into(), int(u64::from(*pid)));
            }
        }
    }
}

/// The keys of a `load` or `conn-cost` case that differ from the defaults.
fn fleet_keys(fleet: &FleetOptions, scenario: &mut Table) {
    let d = FleetOptions::default();
    let counts = [
        ("client_processes", fleet.client_processes, d.client_processes),
        ("server_processes", fleet.server_processes, d.server_processes),
        ("source_addresses", fleet.source_addresses, d.source_addresses),
        ("server_addresses", fleet.server_addresses, d.server_addresses),
    ];
    for (key, value, default) in counts {
        if value != default {
            scenario.insert(key.into(), int(value.into()));
        }
    }
    if fleet.source_addresses != 0 && fleet.source_address_base != d.source_address_base {
        scenario.insert(
            "source_address_base".into(),
            Value::String(fleet.source_address_base.to_string()),
        );
    }
    if fleet.server_model != d.server_model {
        scenario.insert("server_model".into(), name_of(&fleet.server_model));
    }
    if fleet.mode != d.mode {
        scenario.insert("mode".into(), name_of(&fleet.mode));
    }
    if fleet.pipeline != d.pipeline {
        scenario.insert("pipeline".into(), int(fleet.pipeline.into()));
    }
    if let Some(search) = &fleet.search {
        scenario.insert("rate_per_connection_hz".into(), Value::String("search".into()));
        scenario.insert(
            "slo_p99".into(),
            duration_text(std::time::Duration::from_nanos(search.slo_p99_ns)),
        );
        scenario.insert("search_start_hz".into(), Value::Float(search.start_hz));
        scenario.insert("search_growth".into(), Value::Float(search.growth));
        scenario.insert("search_steps".into(), int(search.max_steps.into()));
    }
}

/// The keys of a `balance` case.
fn balance_keys(balance: &BalanceOptions, scenario: &mut Table) {
    use ipcbench_store::StoreConfig;
    scenario.insert("backends".into(), int(balance.backends.into()));
    scenario.insert("clients".into(), int(balance.clients));
    scenario.insert("client_rate_skew".into(), Value::Float(balance.client_rate_skew));
    scenario.insert("policy".into(), name_of(&balance.policy));
    scenario.insert("state".into(), name_of(&balance.store.kind()));
    scenario.insert("state_bytes".into(), int(balance.state_bytes));
    match &balance.store {
        StoreConfig::Local | StoreConfig::Shm => {}
        StoreConfig::Redis(o) => {
            scenario.insert("persistence".into(), name_of(&o.persistence));
        }
        StoreConfig::Postgres(o) => {
            scenario.insert("synchronous_commit".into(), Value::Boolean(o.synchronous_commit));
        }
        StoreConfig::Sqlite(o) => {
            scenario.insert("synchronous".into(), name_of(&o.synchronous));
        }
    }
    if let Some(at) = balance.add_backend_at {
        scenario.insert("add_backend_at".into(), duration_text(at));
    }
    if let Some(at) = balance.remove_backend_at {
        scenario.insert("remove_backend_at".into(), duration_text(at));
    }
    if balance.changes_membership() {
        scenario.insert("on_change".into(), name_of(&balance.on_change));
    }
}

/// `case` as a plan of its own, named `name`, with one repetition: plain TOML that any
/// ipcbench that reads plans can run (`ipcbench run <file>`).
///
/// # Errors
/// When the text would not expand back to exactly this case (a proxy whose front and back are
/// the same transport with different options cannot be written as one plan).
pub fn one_case_plan(case: &Case, name: &str) -> Result<String, String> {
    let mut scenario = Table::new();
    scenario.insert("kind".into(), Value::String(case.scenario.as_str().into()));
    let kind = case.transport.kind().to_string();
    match &case.back_transport {
        Some(back) => {
            scenario.insert("front".into(), Value::Array(vec![Value::String(kind.clone())]));
            scenario.insert(
                "back".into(),
                Value::Array(vec![Value::String(back.kind().to_string())]),
            );
        }
        // http speaks over loopback TCP; it takes no `transports`.
        None if case.http.is_some() => {}
        None => {
            scenario.insert("transports".into(), Value::Array(vec![Value::String(kind.clone())]));
        }
    }
    let size_key = if case.http.is_some() {
        "response_bytes"
    } else {
        "message_bytes"
    };
    scenario.insert(size_key.into(), int(case.message_bytes));
    if let Some(http) = &case.http {
        http_keys(http, &mut scenario);
    }
    if let Some(balance) = &case.balance {
        balance_keys(balance, &mut scenario);
    }
    if let Some(fleet) = &case.fleet {
        fleet_keys(fleet, &mut scenario);
    }
    let allows = |key: &str| case.scenario.keys().contains(&key);
    if allows("reply_bytes") && case.reply_bytes != case.message_bytes {
        scenario.insert("reply_bytes".into(), int(case.reply_bytes));
    }
    if let Some(peer) = case.peer {
        scenario.insert("peer".into(), Value::String(peer.to_string()));
    }
    let optional: [(&str, Option<Value>); 7] = [
        ("total_bytes", case.total_bytes.map(int)),
        ("window", case.window.map(int)),
        ("delay_ms", case.delay_ms.map(Value::Float)),
        ("rate_mbit", case.rate_mbit.map(Value::Float)),
        ("connections", case.connections.map(int)),
        ("rate_per_connection_hz", case.rate_per_connection_hz.map(Value::Float)),
        ("step", case.step.map(int)),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            scenario.insert(key.into(), value);
        }
    }
    if allows("schedule") {
        scenario.insert("schedule".into(), name_of(&case.schedule));
    }
    if allows("server_loops") && case.server_loops != 1 {
        scenario.insert("server_loops".into(), int(case.server_loops.into()));
    }
    // Written only when off: a binary from before bare loops does not know the key.
    if allows("bare") && !case.bare {
        scenario.insert("bare".into(), Value::Boolean(false));
    }
    // Written only when not the default: a binary from before `verify` does not know the key.
    if allows("verify") && case.verify != ipcbench_core::payload::Verify::default() {
        scenario.insert("verify".into(), name_of(&case.verify));
    }
    if allows("convert") && case.convert != Convert::None {
        scenario.insert("convert".into(), name_of(&case.convert));
    }
    let cores = [case.placement.client, case.placement.server].map(|c| int(c as u64));
    scenario.insert("cores".into(), Value::Array(cores.to_vec()));
    scenario.insert(
        "warmup".into(),
        match case.warmup {
            Amount::Time(d) => duration_text(d),
            Amount::Messages(n) => int(n),
        },
    );
    match case.measure {
        Amount::Time(d) => scenario.insert("duration".into(), duration_text(d)),
        Amount::Messages(n) => scenario.insert("messages".into(), int(n)),
    };

    let mut transports = Table::new();
    transports.insert(kind, Value::Table(transport_table(&case.transport)));
    if let Some(back) = &case.back_transport {
        transports.insert(back.kind().to_string(), Value::Table(transport_table(back)));
    }
    let mut plan = Table::new();
    plan.insert("name".into(), Value::String(name.into()));
    plan.insert("repetitions".into(), Value::Integer(1));
    plan.insert("timeout".into(), duration_text(case.timeout));
    plan.insert("scenario".into(), Value::Array(vec![Value::Table(scenario)]));
    plan.insert("transport".into(), Value::Table(transports));
    let text = toml::to_string(&plan).map_err(|e| format!("case {}: {e}", case.id))?;

    // Read it back: the one case must be this case.
    let n_cores = case.placement.client.max(case.placement.server) + 1;
    let parsed = Plan::parse(name, &text, &Overrides::default(), n_cores)
        .map_err(|e| format!("case {} cannot be written as a plan of its own: {e}", case.id))?;
    let same = match parsed.cases.as_slice() {
        [only] => {
            let expected = Case {
                index: 0,
                repetitions: 1,
                ..case.clone()
            };
            *only == expected
        }
        _ => false,
    };
    if !same || case.scenario == ScenarioKind::Proxy && case.back_transport.is_none() {
        return Err(format!(
            "case {} cannot be written as a plan of its own (its options do not survive the round trip)",
            case.id
        ));
    }
    Ok(text)
}
