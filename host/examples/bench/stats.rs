//! Percentiles, formatting, the markdown tables, and the process's resident memory.

use std::time::Duration;

/// The summary of one measurement's samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
    pub runs: usize,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "a measurement without samples");
        samples.sort();
        let at = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
        Stats {
            p50: at(0.5),
            p99: at(0.99),
            runs: samples.len(),
        }
    }

    pub fn from_nanos(p50: u64, p99: u64, runs: usize) -> Stats {
        Stats {
            p50: Duration::from_nanos(p50),
            p99: Duration::from_nanos(p99),
            runs,
        }
    }
}

/// µs below a millisecond, ms below ten seconds, s above.
pub fn time(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 10.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

/// `a / b` as a factor, for the ratio columns.
pub fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
}

pub fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / f64::from(1 << 20))
}

pub fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// A markdown table printed as its rows arrive, so a long run shows progress.
pub struct Table;

impl Table {
    pub fn start(title: &str, columns: &[&str]) -> Table {
        println!("\n### {title}\n");
        println!("| {} |", columns.join(" | "));
        println!("|{}", "---|".repeat(columns.len()));
        Table
    }

    pub fn row(&self, cells: &[String]) {
        println!("| {} |", cells.join(" | "));
    }

    /// A latency row that could not be measured, with the reason in the p50 column.
    pub fn missing(&self, label: &str, reason: String) {
        self.row(&[label.to_owned(), reason, String::new(), String::new(), "0".into()]);
    }

    /// A row for a latency measurement: label, p50, p99, ratio, runs.
    pub fn timing(&self, label: &str, stats: Stats, ratio: String) {
        self.row(&[
            label.to_owned(),
            time(stats.p50),
            time(stats.p99),
            ratio,
            stats.runs.to_string(),
        ]);
    }
}

/// Resident memory of this process, from `/proc/self/statm` (Linux only).
pub fn rss_bytes() -> anyhow::Result<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/statm: {statm}"))?
        .parse()?;
    Ok(pages * 4096.0)
}

/// CPU time this process has used so far, all threads, from `/proc/self/stat` (Linux only;
/// 10 ms resolution, so measure spans of a second or more).
pub fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat: {stat}"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat: {stat}"))?
            .parse()?)
    };
    // Linux reports these in USER_HZ, which is 100 on every architecture it runs on.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}
