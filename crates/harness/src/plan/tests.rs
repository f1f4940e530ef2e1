use super::*;
use crate::plan::{PlanSet, one_case_plan};
use std::time::Duration;

fn parse(text: &str) -> Result<Plan, ConfigError> {
    Plan::parse("plan.toml", text, &Overrides::default(), 2)
}

const MINIMAL: &str = r#"
name = "t"
[[scenario]]
kind = "pingpong"
transports = ["tcp", "null"]
message_bytes = [64, "4KiB"]
"#;

#[test]
fn minimal_plan_expands_to_the_case_matrix() {
    let plan = parse(MINIMAL).unwrap();
    // tcp: 2 sizes x 2 placements; null: 2 sizes x 1 client core.
    assert_eq!(plan.cases.len(), 6);
    assert_eq!(plan.cases[0].id, "pingpong/tcp/64B/c0s1");
    assert_eq!(plan.cases[1].id, "pingpong/tcp/64B/c0s0");
    assert_eq!(plan.cases[2].message_bytes, 4096);
    assert!(plan.cases.iter().all(|c| c.repetitions == 3));
}

#[test]
fn misspelled_key_names_line_and_column() {
    let err = parse("name = \"t\"\nrepetitons = 3\n").unwrap_err();
    assert_eq!(err.position, Some((2, 1)), "{err}");
    assert!(err.message.contains("unknown field `repetitons`"), "{err}");
    assert!(err.message.contains("repetitions"), "names what is allowed: {err}");
}

#[test]
fn unknown_transport_names_what_is_allowed() {
    let err = parse(&MINIMAL.replace("\"null\"", "\"carrier-pigeon\"")).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(5), "{err}");
    assert!(
        err.message.contains("carrier-pigeon") && err.message.contains("`shm`"),
        "{err}"
    );
}

#[test]
fn bad_size_string_is_explained() {
    let err = parse(&MINIMAL.replace("\"4KiB\"", "\"4QB\"")).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(6), "{err}");
    assert!(err.message.contains("unknown unit `QB`"), "{err}");
}

#[test]
fn key_of_another_scenario_is_refused() {
    let err = parse(&format!("{MINIMAL}window = 4\n")).unwrap_err();
    assert!(
        err.message.contains("`window` does not apply to scenario `pingpong`"),
        "{err}"
    );
}

#[test]
fn core_beyond_the_machine_is_refused() {
    let err = parse(&format!("cores = [0, 7]\n{MINIMAL}")).unwrap_err();
    assert!(err.message.contains("core 7 does not exist"), "{err}");
    assert_eq!(err.position, Some((1, 1)));
}

#[test]
fn option_lists_are_case_dimensions() {
    let text = format!("{MINIMAL}[transport.tcp]\nsend_buffer_bytes = [\"default\", 1024]\n");
    let plan = parse(&text).unwrap();
    let tcp: Vec<_> = plan
        .cases
        .iter()
        .filter(|c| c.transport.kind() == TransportKind::Tcp)
        .collect();
    assert_eq!(tcp.len(), 8);
    assert!(tcp.iter().any(|c| c.id == "pingpong/tcp[sndbuf=1024]/64B/c0s1"));
}

#[test]
fn overrides_replace_single_keys() {
    let overrides = Overrides {
        transports: Some(vec![TransportKind::Uds]),
        sizes: Some(vec![128]),
        repetitions: Some(5),
        ..Overrides::default()
    };
    let plan = Plan::parse("plan.toml", MINIMAL, &overrides, 2).unwrap();
    assert_eq!(plan.cases.len(), 2);
    assert!(plan.cases.iter().all(|c| c.message_bytes == 128 && c.repetitions == 5));
}

#[test]
fn built_in_default_plan_parses() {
    let plan = Plan::parse("built-in default", DEFAULT_PLAN, &Overrides::default(), 2).unwrap();
    assert_eq!(plan.name, "default");
    assert!(!plan.cases.is_empty());
}

#[test]
fn size_strings_parse() {
    assert_eq!("4KiB".parse(), Ok(ByteSize(4096)));
    assert_eq!("1 MiB".parse(), Ok(ByteSize(1 << 20)));
    assert_eq!("10MB".parse(), Ok(ByteSize(10_000_000)));
    assert_eq!("64".parse(), Ok(ByteSize(64)));
    assert!("-3".parse::<ByteSize>().is_err());
    assert!("lots".parse::<ByteSize>().is_err());
}

const HTTP: &str = r#"
name = "h"
cores = [0, 1]
[[scenario]]
kind = "http"
front = ["h1", "h2"]
back = ["h1"]
response_bytes = [1024, "64KiB"]
cache_hit_ratio = [0.0, 0.9]
streams = 8
pool_connections = 4
"#;

#[test]
fn http_lists_are_case_dimensions() {
    let plan = parse(HTTP).unwrap();
    // 2 fronts x 1 back x 2 sizes x 2 ratios.
    assert_eq!(plan.cases.len(), 8);
    let first = &plan.cases[0];
    assert_eq!(
        first.id,
        "http/tcp/1024B/c4/front=h1/back=h1/hit0/pool4/hdr8x64/closed/c0s1"
    );
    let http = first.http.as_ref().unwrap();
    assert_eq!(
        (http.streams, http.pool_connections),
        (1, 4),
        "h1 keeps one request in flight"
    );
    let h2 = plan.cases.iter().find(|c| c.id.contains("front=h2")).unwrap();
    assert_eq!(h2.http.as_ref().unwrap().streams, 8);
    let ids: std::collections::HashSet<_> = plan.cases.iter().map(|c| c.id.clone()).collect();
    assert_eq!(ids.len(), plan.cases.len());
    for case in &plan.cases {
        let parsed: ipcbench_record::CaseId = case.id.parse().unwrap();
        assert_eq!(parsed.to_string(), case.id);
    }
}

#[test]
fn http_back_over_uds_shows_in_the_id() {
    let plan = parse(&format!("{HTTP}back_transport = \"uds\"\n")).unwrap();
    assert!(plan.cases[0].id.starts_with("http/tcp->uds/"), "{}", plan.cases[0].id);
    assert!(plan.cases[0].http.as_ref().unwrap().back_uds);
}

/// The line and column of `needle`'s first occurrence in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    let at = text.find(needle).unwrap();
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn bad_http_values_name_their_key() {
    for (from, to, value, message) in [
        (
            "front = [\"h1\", \"h2\"]",
            "front = [\"h1\", \"h3\"]",
            "[\"h1\", \"h3\"]",
            "unknown protocol `h3`",
        ),
        (
            "streams = 8",
            "streams = 1000",
            "1000",
            "above the 256 concurrent streams",
        ),
        (
            "pool_connections = 4",
            "pool_connections = 0",
            "0",
            "`pool_connections` must be between 1",
        ),
        (
            "cache_hit_ratio = [0.0, 0.9]",
            "cache_hit_ratio = [0.0, 1.5]",
            "[0.0, 1.5]",
            "outside 0..=1",
        ),
    ] {
        let text = HTTP.replace(from, to);
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains(message), "{to}: {err}");
        let (line, column) = position_of(&text, to);
        let expected = (line, column + to.find(value).unwrap());
        assert_eq!(err.position, Some(expected), "{to}: {err}");
    }
}

#[test]
fn http_relay_settings_are_checked() {
    let nginx = format!("{HTTP}relay = \"nginx\"\n");
    let plan = parse(&nginx).unwrap();
    assert!(plan.cases.iter().all(|c| c.id.contains("/relay=nginx/")));
    let err = parse(&nginx.replace("streams = 8", "streams = 200")).unwrap_err();
    assert!(err.message.contains("above the 128"), "{err}");
    let err = parse(&format!("{HTTP}relay = \"127.0.0.1:8080\"\n")).unwrap_err();
    assert!(err.message.contains("needs `origin_listen`"), "{err}");
    let external = format!("{HTTP}relay = \"127.0.0.1:8080\"\nrelay_pid = 42\norigin_listen = \"127.0.0.1:8081\"\n");
    let plan = parse(&external).unwrap();
    let relay = &plan.cases[0].http.as_ref().unwrap().relay;
    assert!(matches!(relay, HttpRelay::External { pid: Some(42), .. }), "{relay:?}");
    let err = parse(&format!(
        "{HTTP}relay = \"10.1.2.3:80\"\norigin_listen = \"127.0.0.1:1\"\n"
    ))
    .unwrap_err();
    assert!(err.message.contains("`relay`"), "{err}");
    let err = parse(&format!("{HTTP}relay_pid = 42\n")).unwrap_err();
    assert!(err.message.contains("only to an external relay"), "{err}");
    let err = parse(&format!("{HTTP}rate = \"fast\"\n")).unwrap_err();
    assert!(err.message.contains("expected \"max\""), "{err}");
    let err = parse(&format!("{HTTP}back_transport = \"shm\"\n")).unwrap_err();
    assert!(err.message.contains("`tcp` or `uds`"), "{err}");
    let err = parse(&HTTP.replace("response_bytes", "message_bytes")).unwrap_err();
    assert!(err.message.contains("response_bytes"), "{err}");
    let open_loop = parse(&format!("{HTTP}rate = 200\n")).unwrap();
    assert_eq!(open_loop.cases[0].rate_per_connection_hz, Some(200.0));
    assert!(open_loop.cases[0].id.contains("/r200Hz/"), "{}", open_loop.cases[0].id);
}

/// The plan `MINIMAL` with `extra` appended to its scenario (or before it, with `top`).
fn with_scenario_key(extra: &str) -> String {
    format!("{MINIMAL}{extra}\n")
}

/// Asserts that `text` is refused at `line` (the offending key's own line) with `what`.
fn refused_at(text: &str, line: usize, what: &str) {
    let err = parse(text).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(line), "{err}");
    assert!(err.message.contains(what), "{err}");
}

#[test]
fn values_beyond_what_a_run_can_do_are_refused_at_their_key() {
    // MINIMAL's scenario keys end on line 6; an appended key is on line 7.
    refused_at(
        &with_scenario_key("duration = \"18446744073709551615s\""),
        7,
        "at most 1day",
    );
    refused_at(&with_scenario_key("reply_bytes = \"5GiB\""), 7, "1 GiB");
    refused_at(
        &with_scenario_key("messages = 18446744073709551615"),
        7,
        "1..=1000000000000",
    );
    refused_at(&with_scenario_key("repetitions = 100000"), 7, "1..=1000");
    refused_at(&format!("timeout = \"0s\"\n{MINIMAL}"), 1, "at least 1s");
    refused_at(
        &format!("warmup = \"18446744073709551615s\"\n{MINIMAL}"),
        1,
        "at most 1day",
    );
    let load = MINIMAL.replace("kind = \"pingpong\"", "kind = \"load\"");
    refused_at(&format!("{load}server_loops = 0\n"), 7, "server_loops");
    refused_at(&format!("{load}connections = [10, 0]\n"), 7, "connections");
    refused_at(
        &format!("{MINIMAL}\n[transport.null]\ndelay_ns = 18446744073709551615\n"),
        9,
        "delay_ns",
    );
    refused_at(
        &format!("{MINIMAL}\n[transport.shm]\nring_bytes = 0\n"),
        9,
        "ring_bytes",
    );
    refused_at(
        &format!("{MINIMAL}\n[transport.tcp]\nnodelay = true\nsend_buffer_bytes = \"16GiB\"\n"),
        10,
        "send_buffer_bytes",
    );
    let long = MINIMAL.replace("name = \"t\"", &format!("name = \"{}\"", "x".repeat(1_000_000)));
    let err = parse(&long).unwrap_err();
    assert!(
        err.to_string().len() < 300,
        "the error quotes a bounded part of the name"
    );
}

#[test]
fn a_scenario_key_error_points_at_the_key_not_the_table() {
    refused_at(
        &with_scenario_key("window = 4"),
        7,
        "does not apply to scenario `pingpong`",
    );
}

#[test]
fn a_repeated_scenario_is_an_error_and_an_overlap_a_note() {
    let repeated = format!("{MINIMAL}{}", MINIMAL.replace("name = \"t\"\n", ""));
    refused_at(&repeated, 8, "repeats the one at line 3");
    let overlapping = format!(
        "{MINIMAL}[[scenario]]\nkind = \"pingpong\"\ntransports = [\"null\", \"inproc\"]\nmessage_bytes = 64\n"
    );
    let plan = parse(&overlapping).unwrap();
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("pingpong/null/64B/c0") && n.contains("1 and 2")),
        "{:?}",
        plan.notes
    );
}

#[test]
fn flags_are_bounded_like_the_keys_they_replace() {
    let overrides = Overrides {
        duration: Some(Duration::from_secs(u64::MAX)),
        ..Overrides::default()
    };
    let err = Plan::parse("plan.toml", MINIMAL, &overrides, 2).unwrap_err();
    assert!(err.message.starts_with("--duration:"), "{err}");
}

#[test]
fn the_estimate_of_the_largest_allowed_plan_does_not_overflow() {
    let text = with_scenario_key("messages = 1000000000000\nrepetitions = 1000");
    let plan = parse(&text).unwrap();
    assert!(plan.estimated_duration() > Duration::from_secs(1_000_000));
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    /// Keys a plan may have, and some it may not, at every level.
    const KEYS: &[&str] = &[
        "name",
        "repetitions",
        "warmup",
        "duration",
        "messages",
        "timeout",
        "cores",
        "kind",
        "transports",
        "message_bytes",
        "reply_bytes",
        "total_bytes",
        "window",
        "delay_ms",
        "rate_mbit",
        "connections",
        "rate_per_connection_hz",
        "schedule",
        "server_loops",
        "front",
        "back",
        "convert",
        "step",
        "delay_ns",
        "ring_bytes",
        "wait",
        "nodelay",
        "send_buffer_bytes",
        "p50",
        "alpha",
        "bogus",
    ];
    const TABLES: &[&str] = &[
        "[[scenario]]",
        "[transport.tcp]",
        "[transport.null]",
        "[transport.shm]",
        "[gate]",
        "[x]",
    ];

    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| format!("\"{n}s\"")),
            any::<f64>().prop_map(|f| if f.is_finite() { format!("{f:?}") } else { "nan".into() }),
            "[a-z0-9 ]{0,12}".prop_map(|s| format!("\"{s}\"")),
            prop_oneof![
                Just("\"pingpong\""),
                Just("\"load\""),
                Just("\"tcp\""),
                Just("\"null\""),
                Just("\"4KiB\"")
            ]
            .prop_map(str::to_owned),
            any::<bool>().prop_map(|b| b.to_string()),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(", ")))
        })
    }

    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}")),
            1 => prop::sample::select(TABLES).prop_map(str::to_owned),
            1 => "[ -~]{0,20}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn random_plans_parse_or_fail_with_a_position_never_a_panic(lines in prop::collection::vec(line(), 0..16)) {
            let text = format!("name = \"f\"\n{}\n", lines.join("\n"));
            let started = std::time::Instant::now();
            match Plan::parse("fuzz.toml", &text, &Overrides::default(), 2) {
                Ok(plan) => {
                    prop_assert!(!plan.cases.is_empty());
                    let _ = plan.estimated_duration();
                }
                Err(err) => prop_assert!(!err.message.is_empty(), "{}", err),
            }
            prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "parsing took {:?}", started.elapsed());
        }
    }
}

const BALANCE: &str = r#"
name = "b"
cores = [0, 1]
duration = "2s"
[[scenario]]
kind = "balance"
transports = ["uds"]
message_bytes = 64
connections = 100
clients = 20
backends = 4
policy = ["connection", "bounded-hash"]
state = ["local", "postgres"]
synchronous_commit = false
"#;

#[test]
fn balance_expands_policies_by_states_with_their_options() {
    let plan = parse(BALANCE).unwrap();
    assert_eq!(plan.cases.len(), 4);
    assert_eq!(
        plan.cases[0].id,
        "balance/uds/64B/c100/policy=connection/state=local/b4/clients=20/c0s1"
    );
    assert_eq!(
        plan.cases[3].id,
        "balance/uds/64B/c100/policy=bounded-hash/state=postgres/synchronous_commit=off/b4/clients=20/c0s1"
    );
    let balance = plan.cases[3].balance.as_ref().unwrap();
    assert!(matches!(
        &balance.store,
        ipcbench_store::StoreConfig::Postgres(o) if !o.synchronous_commit
    ));
    // Ids round-trip through the record's parser.
    for case in &plan.cases {
        let id: ipcbench_record::CaseId = case.id.parse().unwrap();
        assert_eq!(id.to_string(), case.id);
    }
    // Local state under connection affinity spreads a client's 5 connections: flagged.
    assert!(plan.cases[0].balance.as_ref().unwrap().incorrect_by_design());
}

#[test]
fn balance_with_no_backends_names_the_key() {
    let err = parse(&BALANCE.replace("backends = 4", "backends = 0")).unwrap_err();
    assert_eq!(err.position, Some((11, 12)), "{err}");
    assert!(err.message.contains("`backends` must be at least 1"), "{err}");
}

#[test]
fn balance_unknown_policy_or_state_names_what_is_allowed() {
    let err = parse(&BALANCE.replace("\"bounded-hash\"", "\"random\"")).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(12), "{err}");
    assert!(
        err.message.contains("random") && err.message.contains("round-robin"),
        "{err}"
    );
    let err = parse(&BALANCE.replace("\"postgres\"", "\"mysql\"")).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(13), "{err}");
    assert!(err.message.contains("mysql") && err.message.contains("sqlite"), "{err}");
}

#[test]
fn balance_membership_change_must_fall_inside_the_measured_phase() {
    let text = format!("{BALANCE}add_backend_at = \"3s\"\n");
    let err = parse(&text).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(15), "{err}");
    assert!(err.message.contains("inside the measured phase"), "{err}");
    let plan = parse(&format!(
        "{BALANCE}add_backend_at = \"1s\"\non_change = [\"keep\", \"rehash\"]\n"
    ))
    .unwrap();
    assert_eq!(plan.cases.len(), 8);
    assert!(
        plan.cases
            .iter()
            .any(|c| c.id.contains("/add@1000ms/on_change=rehash/"))
    );
    let err = parse(&format!("{BALANCE}on_change = \"rehash\"\n")).unwrap_err();
    assert!(
        err.message.contains("`on_change` applies to a membership change"),
        "{err}"
    );
}

#[test]
fn balance_clients_beyond_connections_are_refused() {
    let err = parse(&BALANCE.replace("clients = 20", "clients = 200")).unwrap_err();
    assert_eq!(err.position.map(|p| p.0), Some(10), "{err}");
    assert!(
        err.message
            .contains("`clients` must be between 1 and `connections` (100)"),
        "{err}"
    );
}

#[test]
fn balance_keys_do_not_apply_to_other_scenarios() {
    let err = parse(&format!("{MINIMAL}policy = \"round-robin\"\n")).unwrap_err();
    assert!(
        err.message.contains("`policy` does not apply to scenario `pingpong`"),
        "{err}"
    );
}

fn with_sets(text: &str, sets: &[&str]) -> Result<Plan, ConfigError> {
    let overrides = Overrides {
        sets: sets.iter().map(|s| s.parse().unwrap()).collect(),
        ..Overrides::default()
    };
    Plan::parse("plan.toml", text, &overrides, 2)
}

#[test]
fn set_overrides_any_key_by_its_dotted_path() {
    let plan = with_sets(
        MINIMAL,
        &[
            "transport.null.delay_ns=400",
            "scenario.0.message_bytes=128",
            "duration=200ms",
            "repetitions=7",
        ],
    )
    .unwrap();
    assert_eq!(plan.cases.len(), 3);
    assert!(plan.cases.iter().all(|c| c.message_bytes == 128 && c.repetitions == 7));
    assert!(
        plan.cases
            .iter()
            .all(|c| c.measure == Amount::Time(Duration::from_millis(200)))
    );
    let null = plan
        .cases
        .iter()
        .find(|c| c.transport.kind() == TransportKind::Null)
        .unwrap();
    assert_eq!(null.transport, TransportSettings::Null { delay_ns: 400 });
    assert_ne!(plan.sha256, parse(MINIMAL).unwrap().sha256);
}

#[test]
fn a_bad_set_value_gets_the_plans_own_message_naming_the_set() {
    let err = with_sets(MINIMAL, &["transport.null.delay_ns=abc"]).unwrap_err();
    assert_eq!(err.position, None);
    assert!(err.message.starts_with("--set transport.null.delay_ns=abc: "), "{err}");
    let own = parse(&format!("{MINIMAL}[transport.null]\ndelay_ns = \"abc\"\n")).unwrap_err();
    assert!(err.message.ends_with(&own.message), "{err} / {own}");
    let err = with_sets(MINIMAL, &["repetitions=2", "transport.nul.delay_ns=4"]).unwrap_err();
    assert!(err.message.starts_with("--set transport.nul.delay_ns=4: "), "{err}");
    assert!(err.message.contains("unknown field `nul`"), "{err}");
    let err = with_sets(MINIMAL, &["scenario.3.message_bytes=64"]).unwrap_err();
    assert!(
        err.message.contains("`scenario` has 1 entries; there is no entry 3"),
        "{err}"
    );
    let err = with_sets(MINIMAL, &["name.x=1"]).unwrap_err();
    assert!(err.message.contains("`name` is not a table"), "{err}");
    assert!("novalue".parse::<PlanSet>().is_err());
}

#[test]
fn a_bad_plan_reports_its_own_error_even_with_sets() {
    let err = with_sets("name = \"t\"\nrepetitons = 3\n", &["repetitions=2"]).unwrap_err();
    assert_eq!(err.position, Some((2, 1)), "{err}");
}

#[test]
fn every_case_of_the_shipped_plans_survives_a_one_case_plan() {
    let dir = format!("{}/../../bench-configs", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "{files:?}");
    for file in &files {
        let text = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
        let plan = Plan::parse(file, &text, &Overrides::default(), 2).unwrap();
        for case in &plan.cases {
            let one = one_case_plan(case, "one").unwrap_or_else(|e| panic!("{file}: {e}"));
            let parsed = Plan::parse("one", &one, &Overrides::default(), 2).unwrap();
            assert_eq!(parsed.cases.len(), 1, "{one}");
            assert_eq!(parsed.cases[0].id, case.id, "{one}");
            assert_eq!(parsed.cases[0].repetitions, 1);
        }
    }
}

#[test]
fn a_huge_float_is_shown_short_in_its_error() {
    for (text, shown) in [
        (
            "name = \"h\"\n[[scenario]]\nkind = \"http\"\nresponse_bytes = 1024\nrate = 1e300\n",
            "`rate` = 1e300",
        ),
        (
            "name = \"h\"\n[[scenario]]\nkind = \"http\"\nresponse_bytes = 1024\ncache_hit_ratio = 1e300\n",
            "`cache_hit_ratio` = 1e300",
        ),
        (
            "name = \"b\"\n[[scenario]]\nkind = \"balance\"\ntransports = [\"uds\"]\nmessage_bytes = 64\n\
             rate_per_connection_hz = 1e300\n",
            "`rate_per_connection_hz` = 1e300",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert!(err.message.contains(shown), "{err}");
        assert!(err.to_string().len() < 200, "{err}");
    }
}

#[test]
fn verify_is_sampled_by_default_full_on_request_and_refused_where_it_does_not_apply() {
    use ipcbench_core::payload::Verify;
    let plan = parse(MINIMAL).unwrap();
    assert!(plan.cases.iter().all(|c| c.verify == Verify::Sampled));
    let plan = parse(&format!("{MINIMAL}verify = \"full\"\n")).unwrap();
    assert!(plan.cases.iter().all(|c| c.verify == Verify::Full));
    let err = parse(&format!("{MINIMAL}verify = \"some\"\n")).unwrap_err();
    assert!(
        err.message.contains("`full`") && err.message.contains("`sampled`"),
        "{err}"
    );
    let load = "name = \"t\"\n[[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n\
                verify = \"full\"\n";
    let err = parse(load).unwrap_err();
    assert!(err.message.contains("`verify` does not apply"), "{err}");
    assert_eq!(err.position.map(|p| p.0), Some(6), "{err}");
}

#[test]
fn balance_and_http_errors_point_at_their_key() {
    let cases = [
        (
            "name = \"b\"\n[[scenario]]\nkind = \"balance\"\ntransports = [\"uds\"]\nmessage_bytes = 64\n\
             on_change = \"rehash\"\n",
            6,
        ),
        (
            "name = \"b\"\n[[scenario]]\nkind = \"balance\"\ntransports = [\"uds\"]\nmessage_bytes = 64\n\
             policy = []\n",
            6,
        ),
        (
            "name = \"h\"\n[[scenario]]\nkind = \"http\"\nresponse_bytes = 1024\nrelay = \"nginx\"\ntls = true\n",
            6,
        ),
    ];
    for (text, line) in cases {
        let err = parse(text).unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(line), "{err}");
    }
}

#[test]
fn peer_names_the_agent_of_every_scenario_unless_a_scenario_names_its_own() {
    let plan = parse(
        "name = \"t\"\npeer = \"198.18.0.2:7100\"\ncores = [0, 1]\n\
         [[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n\
         [[scenario]]\nkind = \"stream\"\ntransports = [\"tcp\"]\nmessage_bytes = 4096\npeer = \"198.18.0.6:7100\"\n\
         [[scenario]]\nkind = \"load\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n",
    )
    .unwrap();
    let peers: Vec<String> = plan.cases.iter().map(|c| c.peer.unwrap().to_string()).collect();
    assert_eq!(peers, ["198.18.0.2:7100", "198.18.0.6:7100", "198.18.0.2:7100"]);
    assert_eq!(plan.cases[0].id, "pingpong/tcp/64B/remote/c0s1");
    assert_eq!(plan.agents().len(), 2);
    // A remote case written back as a plan of its own keeps its agent.
    let text = one_case_plan(&plan.cases[1], "one").unwrap();
    let back = &parse(&text).unwrap().cases[0];
    assert_eq!((&back.id, back.peer), (&plan.cases[1].id, plan.cases[1].peer));
    // Without `peer`, nothing changes.
    assert!(parse(MINIMAL).unwrap().cases.iter().all(|c| c.peer.is_none()));
}

#[test]
fn a_remote_peer_is_refused_for_local_transports_and_other_scenarios_at_the_key() {
    for (text, line, expected) in [
        (
            "name = \"t\"\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\", \"shm\"]\nmessage_bytes = 64\npeer = \"198.18.0.2:7100\"\n",
            4,
            "`shm` cannot reach a remote peer",
        ),
        (
            "name = \"t\"\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\npeer = \"0.0.0.0:7100\"\n",
            6,
            "unspecified IP",
        ),
        (
            "name = \"t\"\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\npeer = \"agent:7100\"\n",
            6,
            "not IP:PORT",
        ),
        (
            "name = \"t\"\npeer = \"198.18.0.2:7100\"\n[[scenario]]\nkind = \"conn-cost\"\ntransports = [\"tcp\"]\nmessage_bytes = 64\n",
            2,
            "scenario `conn-cost` cannot run remotely",
        ),
    ] {
        let err = parse(text).unwrap_err();
        assert_eq!(err.position.map(|p| p.0), Some(line), "{err}");
        assert!(err.message.contains(expected), "{err}");
    }
}
