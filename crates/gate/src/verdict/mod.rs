//! The verdict texts of a comparison: the terminal report and the Markdown summary, both
//! ending with the one rule text ([`RULE`]), and the rows the comparison chart draws.

mod markdown;
mod parts;
mod rule;
mod terminal;

pub use markdown::markdown;
pub use parts::chart_rows;
pub use rule::{CONFIRMATION_RULE, PAIRED_RULE, RULE, paired_rule_text, rule_text};
pub use terminal::terminal;
