use super::*;

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
