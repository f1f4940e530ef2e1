//! The regression rule in words: the one text the terminal verdict, the Markdown summary and
//! the docs quote.

use crate::comparison::Comparison;
use crate::settings::GateSettings;

/// The rule that decides a regression, as every verdict prints it. [`rule_text`] fills in the
/// `{alpha}` and threshold placeholders (thresholds in percent) from the settings used.
pub const RULE: &str = "a metric regresses when the Mann-Whitney U test across trials gives p < {alpha}, the 95% \
     bootstrap interval of new/old excludes 1, and the whole interval is beyond its threshold (p50 +{p50}%, \
     p99 +{p99}%, throughput -{throughput}%, CPU/msg +{cpu_per_message}%) and beyond the baseline's own noise \
     (the largest deviation of a baseline trial from its median)";

/// The rule of a paired comparison (`ipcbench ci --against`), filled in like [`RULE`].
pub const PAIRED_RULE: &str = "paired comparison: each round ran the old and the new binary back to back on the \
     same cores; a metric regresses when the Wilcoxon signed-rank test of the per-round ratios new/old gives \
     p < {alpha}, the 95% bootstrap interval of their median excludes 1, and the whole interval is beyond its \
     threshold (p50 +{p50}%, p99 +{p99}%, throughput -{throughput}%, CPU/msg +{cpu_per_message}%)";

/// What [`RULE`] adds when flagged cases were re-run; `{n}` is the number of re-runs.
pub const CONFIRMATION_RULE: &str = "; flagged cases were re-run {n} more time(s) and count only if a flagged \
     metric regresses again in the pooled re-runs";

/// [`RULE`] with `settings` filled in, and [`CONFIRMATION_RULE`] when `confirmation_runs` is
/// `Some`.
pub fn rule_text(settings: &GateSettings, confirmation_runs: Option<usize>) -> String {
    fill(RULE, settings, confirmation_runs)
}

/// [`PAIRED_RULE`] with `settings` filled in, and [`CONFIRMATION_RULE`] when
/// `confirmation_runs` is `Some`.
pub fn paired_rule_text(settings: &GateSettings, confirmation_runs: Option<usize>) -> String {
    fill(PAIRED_RULE, settings, confirmation_runs)
}

/// The rule `comparison` was judged by: [`PAIRED_RULE`] for a paired one, else [`RULE`].
pub(crate) fn rule_of(comparison: &Comparison) -> String {
    match comparison.paired {
        Some(_) => paired_rule_text(&comparison.settings, comparison.confirmation_runs),
        None => rule_text(&comparison.settings, comparison.confirmation_runs),
    }
}

fn fill(rule: &str, settings: &GateSettings, confirmation_runs: Option<usize>) -> String {
    let percent = |fraction: f64| format!("{:.0}", fraction * 100.0);
    let mut text = rule
        .replace("{alpha}", &settings.alpha.to_string())
        .replace("{p50}", &percent(settings.p50))
        .replace("{p99}", &percent(settings.p99))
        .replace("{throughput}", &percent(settings.throughput))
        .replace("{cpu_per_message}", &percent(settings.cpu_per_message));
    if let Some(n) = confirmation_runs {
        text.push_str(&CONFIRMATION_RULE.replace("{n}", &n.to_string()));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rule_names_every_default_threshold() {
        let text = rule_text(&GateSettings::default(), None);
        assert!(text.starts_with("a metric regresses when the Mann-Whitney U test across trials gives p < 0.05,"));
        assert!(
            text.contains("(p50 +10%, p99 +25%, throughput -10%, CPU/msg +15%)"),
            "{text}"
        );
        assert!(!text.contains('{'), "{text}");
    }

    #[test]
    fn the_paired_rule_names_the_signed_rank_test_and_every_threshold() {
        let text = paired_rule_text(&GateSettings::default(), Some(2));
        assert!(text.starts_with("paired comparison: "), "{text}");
        assert!(text.contains("Wilcoxon signed-rank test of the per-round ratios new/old gives p < 0.05"));
        assert!(
            text.contains("(p50 +10%, p99 +25%, throughput -10%, CPU/msg +15%)"),
            "{text}"
        );
        assert!(text.contains("re-run 2 more time(s)") && !text.contains('{'), "{text}");
    }

    #[test]
    fn confirmation_adds_its_clause() {
        let text = rule_text(&GateSettings::default(), Some(2));
        assert!(text.ends_with("; flagged cases were re-run 2 more time(s) and count only if a flagged metric regresses again in the pooled re-runs"));
    }
}
