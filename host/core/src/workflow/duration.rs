//! ISO 8601 durations (`PT5S`, `PT1H`, `P1D`), as Logic Apps writes intervals and timeouts.

use std::time::Duration;

/// Parses `P[nD][T[nH][nM][n[.n]S]]` (also weeks, `PnW`). Years and months have no fixed
/// length and are refused.
pub fn parse_iso8601_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not an ISO 8601 duration such as PT30S, PT5M, PT1H or P1D");
    let rest = text.strip_prefix('P').ok_or_else(bad)?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut seconds = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                number.push(c);
                continue;
            }
            let scale = units
                .iter()
                .find(|(u, _)| *u == c)
                .map(|(_, s)| *s)
                .ok_or_else(|| {
                    if c == 'Y' || c == 'M' {
                        format!("{text:?}: years and months have no fixed length; use days")
                    } else {
                        bad()
                    }
                })?;
            let value: f64 = number.parse().map_err(|_| bad())?;
            seconds += value * scale;
            number.clear();
            any = true;
        }
        if number.is_empty() { Ok(()) } else { Err(bad()) }
    };
    take(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return Err(bad());
        }
        take(time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !any {
        return Err(bad());
    }
    // Enough digits make any finite count of days overflow a Duration (or f64 itself).
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("{text:?} is longer than any duration cordon can keep"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_logic_apps_intervals() {
        for (text, seconds) in [
            ("PT5S", 5.0),
            ("PT1H", 3600.0),
            ("P1D", 86400.0),
            ("PT1M30S", 90.0),
            ("PT0.5S", 0.5),
            ("P1DT2H", 93600.0),
            ("P1W", 604800.0),
        ] {
            assert_eq!(
                parse_iso8601_duration(text),
                Ok(Duration::from_secs_f64(seconds)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_a_fixed_duration() {
        for text in ["5S", "PT", "P", "P1M", "PTXS", "P1H", ""] {
            assert!(parse_iso8601_duration(text).is_err(), "{text}");
        }
    }

    #[test]
    fn refuses_a_duration_too_long_to_keep_instead_of_panicking() {
        let huge_days = format!("P{}D", "9".repeat(400));
        for text in ["P999999999999999999999999D", huge_days.as_str()] {
            let error = parse_iso8601_duration(text).expect_err(text);
            assert!(error.contains("longer than any duration"), "{text}: {error}");
        }
    }
}
