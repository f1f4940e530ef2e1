//! What a run can actually do: the bounds every plan value is checked against when the plan is
//! read, so a bad value is one positioned error at validation instead of a panic, an overflow
//! or a failure minutes into the run.
//!
//! The bounds are generous for real use and small enough that no arithmetic on them can
//! overflow: a day per phase, 10^12 messages, 1 GiB per message or buffer, 10 ms of injected
//! delay per message (the gate's known-answer slowdowns are a few hundred ns).

use std::ops::RangeInclusive;
use std::time::Duration;

/// The longest warm-up, measured phase or trial timeout.
pub const MAX_PHASE: Duration = Duration::from_secs(24 * 3600);
/// The shortest trial timeout (a trial has to start two processes).
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
/// The most messages a phase may count.
pub const MAX_MESSAGES: u64 = 1_000_000_000_000;
/// The largest request or reply: both sides allocate buffers of this size.
pub const MAX_MESSAGE_BYTES: u64 = 1 << 30;
/// The largest `total_bytes` of a stream trial.
pub const MAX_TOTAL_BYTES: u64 = 1 << 40;
/// The largest socket or pipe buffer asked of the kernel (it caps to its own maxima, which
/// are read back and recorded).
pub const MAX_BUFFER_BYTES: u64 = 1 << 30;
/// The largest busy-wait injected per message by `inproc` and `null`.
pub const MAX_DELAY_NS: u64 = 10_000_000;
/// The most repetitions of a case.
pub const MAX_REPETITIONS: u32 = 1000;
/// The longest plan name (it becomes a folder name).
pub const MAX_NAME_CHARS: usize = 64;
/// The largest plan file read.
pub const MAX_PLAN_BYTES: u64 = 1 << 20;
/// Allowed event loops of the load server.
pub const SERVER_LOOPS: RangeInclusive<u32> = 1..=64;
/// The most connections of one case (more processes and source addresses beyond one
/// process's descriptors).
pub const MAX_CONNECTIONS: u64 = 1_000_000;
/// The most generator or server processes of one `load` or `conn-cost` case.
pub const MAX_PROCESSES: u64 = 64;
/// The most client source addresses (all inside 127.0.0.0/8).
pub const MAX_SOURCE_ADDRESSES: u64 = 65_536;
/// The most listening addresses per server process.
pub const MAX_SERVER_ADDRESSES: u64 = 64;
/// The most requests in flight per connection in the closed loop.
pub const MAX_PIPELINE: u64 = 1024;
/// The most steps of a capacity search.
pub const MAX_SEARCH_STEPS: u64 = 40;
/// The most requests in flight.
pub const MAX_WINDOW: u64 = 1_000_000;
/// The highest send rate per connection, Hz.
pub const MAX_RATE_HZ: f64 = 10_000_000.0;

/// Checks a phase length or timeout named `key`.
pub fn duration(key: &str, value: Duration) -> Result<(), String> {
    if value > MAX_PHASE {
        return Err(format!(
            "`{key}` of {} is too long; at most {}",
            humantime::format_duration(value),
            humantime::format_duration(MAX_PHASE)
        ));
    }
    Ok(())
}

/// Checks the trial timeout.
pub fn timeout(value: Duration) -> Result<(), String> {
    duration("timeout", value)?;
    if value < MIN_TIMEOUT {
        return Err(format!(
            "`timeout` of {} is too short for a trial to start its peer; at least {}",
            humantime::format_duration(value),
            humantime::format_duration(MIN_TIMEOUT)
        ));
    }
    Ok(())
}

/// Checks a message count named `key`.
pub fn messages(key: &str, value: u64) -> Result<(), String> {
    if value == 0 || value > MAX_MESSAGES {
        return Err(format!("`{key}` = {value} is out of range; allowed 1..={MAX_MESSAGES}"));
    }
    Ok(())
}

/// Checks a byte count named `key` against `1..=max` (`min` = 0 allows zero).
pub fn bytes(key: &str, value: u64, min: u64, max: u64) -> Result<(), String> {
    if !(min..=max).contains(&value) {
        return Err(format!(
            "`{key}` = {value} bytes is out of range; allowed {min} to {max} bytes ({})",
            human_bytes(max)
        ));
    }
    Ok(())
}

/// A float as an error message shows it: `1e300` rather than its 301 digits.
pub fn number(x: f64) -> String {
    if x.is_finite() && x.abs() < 1e9 {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// Checks an integer named `key` against `range`.
pub fn count(key: &str, value: u64, range: RangeInclusive<u64>) -> Result<(), String> {
    if !range.contains(&value) {
        return Err(format!(
            "`{key}` = {value} is out of range; allowed {}..={}",
            range.start(),
            range.end()
        ));
    }
    Ok(())
}

/// Checks a plan name: a folder name of at most [`MAX_NAME_CHARS`] characters.
pub fn name(value: &str) -> Result<(), String> {
    let shown: String = value.chars().take(MAX_NAME_CHARS).collect();
    let shown = if shown.len() < value.len() {
        format!("{shown}...")
    } else {
        shown
    };
    if value.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "`name` `{shown}` has {} characters; at most {MAX_NAME_CHARS}",
            value.chars().count()
        ));
    }
    if value.trim().is_empty()
        || value.starts_with('.')
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!(
            "bad name `{shown}`: use letters, digits, `-`, `_`, `.` (not first)"
        ));
    }
    Ok(())
}

fn human_bytes(n: u64) -> String {
    match n {
        b if b >= 1 << 40 && b % (1 << 40) == 0 => format!("{} TiB", b >> 40),
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_name_what_is_allowed() {
        assert!(
            duration("duration", Duration::from_secs(u64::MAX))
                .unwrap_err()
                .contains("at most 1day")
        );
        assert!(timeout(Duration::ZERO).unwrap_err().contains("at least 1s"));
        assert!(messages("messages", u64::MAX).unwrap_err().contains("1..="));
        assert!(
            bytes("reply_bytes", 5 << 30, 0, MAX_MESSAGE_BYTES)
                .unwrap_err()
                .contains("1 GiB")
        );
        assert!(count("server_loops", 0, 1..=64).unwrap_err().contains("1..=64"));
        let long = "x".repeat(10_000_000);
        let err = name(&long).unwrap_err();
        assert!(
            err.len() < 200,
            "the error quotes a bounded part of the name: {} bytes",
            err.len()
        );
        assert!(name(".hidden").is_err() && name("a/b").is_err() && name("ok-name_1.2").is_ok());
    }
}
