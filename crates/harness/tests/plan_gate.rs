//! A plan carries its `[gate]` table, validated with the gate's own rules and positioned errors.

use ipcbench_harness::plan::{Overrides, Plan};

#[test]
fn a_plan_carries_its_gate_table_and_bad_values_name_the_line() {
    let text = "name = \"g\"\n[[scenario]]\nkind = \"pingpong\"\ntransports = [\"null\"]\nmessage_bytes = 64\n\
                [gate]\np50 = 0.2\nalpha = 0.01\n";
    let plan = Plan::parse("g.toml", text, &Overrides::default(), 2).unwrap();
    let gate = plan.gate.unwrap();
    assert_eq!((gate.p50, gate.alpha, gate.p99), (Some(0.2), Some(0.01), None));
    assert_eq!(
        plan.config_json["gate"]["p50"], 0.2,
        "the record's config keeps the table"
    );
    let bad = text.replace("p50 = 0.2", "p50 = -1");
    let err = Plan::parse("g.toml", &bad, &Overrides::default(), 2)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("g.toml:6:1: [gate]: p50 = -1"), "{err}");
    let unknown = text.replace("p50 = 0.2", "p95 = 0.2");
    let err = Plan::parse("g.toml", &unknown, &Overrides::default(), 2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("p95"), "{err}");
}
