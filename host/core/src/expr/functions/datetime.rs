//! Date and time functions. Timestamps are ISO 8601 strings; results use the .NET round-trip
//! format `o` (`2018-03-15T13:00:00.0000000Z`) unless a format is given, as in Logic Apps.
//! Formats are .NET standard (`o`, `s`, `u`, `r`, `d`, `D`, `t`, `T`, `g`, `G`, `f`, `F`, `M`,
//! `y`) or custom (`yyyy-MM-dd HH:mm`) strings, in the invariant culture.
//!
//! `convertFromUtc`, `convertTimeZone` and `convertToUtc` take Windows zone names as Logic
//! Apps does, or IANA names ([`crate::time_zone`]). A converted local time is formatted as
//! .NET formats a time with no zone: `o` gives `2018-01-01T00:00:00.0000000`, with no offset.
//! A timestamp with no offset is wall-clock time in the source zone; one with an offset names
//! its instant whatever the source zone. A wall-clock time that occurs twice (the hour the
//! clocks go back) is read as standard time, the later instant, as .NET does; one the clocks
//! skip is an error.

use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use serde_json::Value;

use chrono::LocalResult;
use chrono_tz::Tz;

use super::{Args, ExprError, FunctionInfo, f};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    f("addDays", 2, 3, add_days),
    f("addHours", 2, 3, add_hours),
    f("addMinutes", 2, 3, add_minutes),
    f("addSeconds", 2, 3, add_seconds),
    f("addToTime", 3, 4, add_to_time),
    f("convertFromUtc", 2, 3, convert_from_utc),
    f("convertTimeZone", 3, 4, convert_time_zone),
    f("convertToUtc", 2, 3, convert_to_utc),
    f("dateDifference", 2, 2, date_difference),
    f("dayOfMonth", 1, 1, day_of_month),
    f("dayOfWeek", 1, 1, day_of_week),
    f("dayOfYear", 1, 1, day_of_year),
    f("formatDateTime", 1, 3, format_date_time),
    f("getFutureTime", 2, 3, get_future_time),
    f("getPastTime", 2, 3, get_past_time),
    f("parseDateTime", 1, 3, parse_date_time),
    f("startOfDay", 1, 2, start_of_day),
    f("startOfHour", 1, 2, start_of_hour),
    f("startOfMonth", 1, 2, start_of_month),
    f("subtractFromTime", 3, 4, subtract_from_time),
    f("ticks", 1, 1, ticks),
    f("utcNow", 0, 1, utc_now),
];

/// Parses an ISO 8601 timestamp; one without an offset is taken as UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // The last three are the invariant culture's month/day/year, which .NET reads too (the
    // function reference's own convertToUtc example is '01/01/2018 00:00:00').
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    for format in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            return d.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
        }
    }
    DateTime::parse_from_rfc2822(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn timestamp(args: &Args<'_>, i: usize) -> Result<DateTime<Utc>, ExprError> {
    let text = args.string(i)?;
    parse_timestamp(&text).ok_or_else(|| {
        args.error(format!(
            "cannot read {text:?} as a timestamp; write ISO 8601, like 2024-05-01T13:00:00Z"
        ))
    })
}

/// Formats with the optional format argument at `i`, `o` by default.
fn output(args: &Args<'_>, time: DateTime<Utc>, i: usize) -> Result<Value, ExprError> {
    let format = args.optional_string(i)?.unwrap_or_else(|| "o".to_owned());
    format_dotnet(time, &format)
        .map(Value::String)
        .map_err(|e| args.error(e))
}

fn zone(args: &Args<'_>, i: usize) -> Result<Tz, ExprError> {
    crate::time_zone::parse(&args.string(i)?).map_err(|e| args.error(e))
}

/// The instant the timestamp at `i` names: its own offset if it has one, else its wall-clock
/// time in `zone`.
fn instant_in(args: &Args<'_>, i: usize, zone: Tz) -> Result<DateTime<Utc>, ExprError> {
    let text = args.string(i)?;
    let trimmed = text.trim();
    let with_offset =
        DateTime::parse_from_rfc3339(trimmed).or_else(|_| DateTime::parse_from_rfc2822(trimmed));
    if let Ok(instant) = with_offset {
        return Ok(instant.with_timezone(&Utc));
    }
    let wall_clock = timestamp(args, i)?.naive_utc();
    match zone.from_local_datetime(&wall_clock) {
        LocalResult::Single(t) | LocalResult::Ambiguous(_, t) => Ok(t.with_timezone(&Utc)),
        LocalResult::None => Err(args.error(format!(
            "{text:?} does not exist in {}: the clocks skip that time",
            zone.name()
        ))),
    }
}

/// `instant` as wall-clock time in `zone`, formatted with the format argument at `i`; in UTC
/// it keeps its `Z`.
fn output_in(args: &Args<'_>, instant: DateTime<Utc>, zone: Tz, i: usize) -> Result<Value, ExprError> {
    if zone == Tz::UTC || zone == Tz::Etc__UTC {
        return output(args, instant, i);
    }
    let format = args.optional_string(i)?.unwrap_or_else(|| "o".to_owned());
    let local = instant.with_timezone(&zone).naive_local();
    format_wall_clock(local, Kind::Unspecified, &format)
        .map(Value::String)
        .map_err(|e| args.error(e))
}

fn convert_from_utc(args: &Args<'_>) -> Result<Value, ExprError> {
    let destination = zone(args, 1)?;
    output_in(args, instant_in(args, 0, Tz::UTC)?, destination, 2)
}

fn convert_time_zone(args: &Args<'_>) -> Result<Value, ExprError> {
    let (source, destination) = (zone(args, 1)?, zone(args, 2)?);
    output_in(args, instant_in(args, 0, source)?, destination, 3)
}

fn convert_to_utc(args: &Args<'_>) -> Result<Value, ExprError> {
    let source = zone(args, 1)?;
    output(args, instant_in(args, 0, source)?, 2)
}

fn shift(args: &Args<'_>, unit_seconds: i64) -> Result<Value, ExprError> {
    let time = timestamp(args, 0)?;
    let amount = args.integer(1)?;
    let shifted = amount
        .checked_mul(unit_seconds)
        .and_then(Duration::try_seconds)
        .and_then(|d| time.checked_add_signed(d))
        .ok_or_else(|| args.error("moves the time out of range"))?;
    output(args, shifted, 2)
}

fn add_days(args: &Args<'_>) -> Result<Value, ExprError> {
    shift(args, 86_400)
}

fn add_hours(args: &Args<'_>) -> Result<Value, ExprError> {
    shift(args, 3_600)
}

fn add_minutes(args: &Args<'_>) -> Result<Value, ExprError> {
    shift(args, 60)
}

fn add_seconds(args: &Args<'_>) -> Result<Value, ExprError> {
    shift(args, 1)
}

/// Adds `amount` of `unit` (Second, Minute, Hour, Day, Week, Month, Year).
fn add_interval(
    args: &Args<'_>,
    time: DateTime<Utc>,
    amount: i64,
    unit: &str,
) -> Result<DateTime<Utc>, ExprError> {
    let out_of_range = || args.error("moves the time out of range");
    let seconds = |per: i64| {
        amount
            .checked_mul(per)
            .and_then(Duration::try_seconds)
            .and_then(|d| time.checked_add_signed(d))
            .ok_or_else(out_of_range)
    };
    let months = |per: i64| {
        let total = amount.checked_mul(per).ok_or_else(out_of_range)?;
        let magnitude = Months::new(u32::try_from(total.unsigned_abs()).map_err(|_| out_of_range())?);
        if total >= 0 {
            time.checked_add_months(magnitude)
        } else {
            time.checked_sub_months(magnitude)
        }
        .ok_or_else(out_of_range)
    };
    match unit.to_ascii_lowercase().trim_end_matches('s') {
        "second" => seconds(1),
        "minute" => seconds(60),
        "hour" => seconds(3_600),
        "day" => seconds(86_400),
        "week" => seconds(604_800),
        "month" => months(1),
        "year" => months(12),
        _ => Err(args.error(format!(
            "does not know the time unit {unit:?}; use Second, Minute, Hour, Day, Week, Month or Year"
        ))),
    }
}

fn add_to_time(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = add_interval(args, timestamp(args, 0)?, args.integer(1)?, &args.string(2)?)?;
    output(args, time, 3)
}

/// The integer argument `i`, negated; the most negative integer has no negation in 64 bits.
fn negated(args: &Args<'_>, i: usize) -> Result<i64, ExprError> {
    args.integer(i)?
        .checked_neg()
        .ok_or_else(|| args.error("moves the time out of range"))
}

fn subtract_from_time(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = add_interval(args, timestamp(args, 0)?, negated(args, 1)?, &args.string(2)?)?;
    output(args, time, 3)
}

fn get_future_time(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = add_interval(args, Utc::now(), args.integer(0)?, &args.string(1)?)?;
    output(args, time, 2)
}

fn get_past_time(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = add_interval(args, Utc::now(), negated(args, 0)?, &args.string(1)?)?;
    output(args, time, 2)
}

fn utc_now(args: &Args<'_>) -> Result<Value, ExprError> {
    output(args, Utc::now(), 0)
}

fn format_date_time(args: &Args<'_>) -> Result<Value, ExprError> {
    output(args, timestamp(args, 0)?, 1)
}

/// `parseDateTime(text, locale?, format?)`: with a format, the text is read with it; otherwise
/// as ISO 8601.
fn parse_date_time(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = args.string(0)?;
    let time = match args.optional_string(2)? {
        Some(format) => {
            let strftime = dotnet_to_strftime(&format).map_err(|e| args.error(e))?;
            NaiveDateTime::parse_from_str(&text, &strftime)
                .map(|t| Utc.from_utc_datetime(&t))
                .or_else(|_| {
                    NaiveDate::parse_from_str(&text, &strftime)
                        .map(|d| Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()))
                })
                .map_err(|e| args.error(format!("cannot read {text:?} with the format {format:?}: {e}")))?
        }
        None => timestamp(args, 0)?,
    };
    output(args, time, 3)
}

fn start_of_day(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = timestamp(args, 0)?;
    let start = time.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default();
    output(args, Utc.from_utc_datetime(&start), 1)
}

fn start_of_hour(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = timestamp(args, 0)?;
    let start = time
        .date_naive()
        .and_hms_opt(time.hour(), 0, 0)
        .unwrap_or_default();
    output(args, Utc.from_utc_datetime(&start), 1)
}

fn start_of_month(args: &Args<'_>) -> Result<Value, ExprError> {
    let time = timestamp(args, 0)?;
    let start = NaiveDate::from_ymd_opt(time.year(), time.month(), 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .unwrap_or_default();
    output(args, Utc.from_utc_datetime(&start), 1)
}

fn day_of_month(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::from(timestamp(args, 0)?.day()))
}

/// 0 for Sunday, as documented.
fn day_of_week(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::from(timestamp(args, 0)?.weekday().num_days_from_sunday()))
}

fn day_of_year(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::from(timestamp(args, 0)?.ordinal()))
}

/// 100-nanosecond intervals since 0001-01-01T00:00:00Z, as .NET counts ticks.
fn ticks(args: &Args<'_>) -> Result<Value, ExprError> {
    const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
    let time = timestamp(args, 0)?;
    let since_epoch = time.timestamp() * 10_000_000 + i64::from(time.timestamp_subsec_nanos() / 100);
    Ok(Value::from(UNIX_EPOCH_TICKS + since_epoch))
}

/// `dateDifference(start, end)`: a .NET TimeSpan string, `[-][d.]hh:mm:ss[.fffffff]`.
fn date_difference(args: &Args<'_>) -> Result<Value, ExprError> {
    let difference = timestamp(args, 1)? - timestamp(args, 0)?;
    let negative = difference < Duration::zero();
    let total = difference.abs();
    let days = total.num_days();
    let hours = total.num_hours() % 24;
    let minutes = total.num_minutes() % 60;
    let seconds = total.num_seconds() % 60;
    let fraction = total.subsec_nanos() / 100;
    let mut text = String::new();
    if negative {
        text.push('-');
    }
    if days > 0 {
        text.push_str(&format!("{days}."));
    }
    text.push_str(&format!("{hours:02}:{minutes:02}:{seconds:02}"));
    if fraction > 0 {
        text.push_str(&format!(".{fraction:07}"));
    }
    Ok(Value::String(text))
}

/// What a formatted time says about its zone, as .NET's `DateTimeKind`: `K` is `Z` for a UTC
/// time and nothing for a wall-clock time in some zone.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Utc,
    Unspecified,
}

/// Formats `time` with a .NET standard or custom format string.
pub(crate) fn format_dotnet(time: DateTime<Utc>, format: &str) -> Result<String, String> {
    format_wall_clock(time.naive_utc(), Kind::Utc, format)
}

fn format_wall_clock(time: NaiveDateTime, kind: Kind, format: &str) -> Result<String, String> {
    let custom = match format {
        "o" | "O" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fffffffK",
        "s" => "yyyy'-'MM'-'dd'T'HH':'mm':'ss",
        "u" => "yyyy'-'MM'-'dd HH':'mm':'ss'Z'",
        "r" | "R" => "ddd, dd MMM yyyy HH':'mm':'ss 'GMT'",
        "d" => "M/d/yyyy",
        "D" => "dddd, MMMM d, yyyy",
        "t" => "h:mm tt",
        "T" => "h:mm:ss tt",
        "g" => "M/d/yyyy h:mm tt",
        "G" => "M/d/yyyy h:mm:ss tt",
        "f" => "dddd, MMMM d, yyyy h:mm tt",
        "F" => "dddd, MMMM d, yyyy h:mm:ss tt",
        "M" | "m" => "MMMM d",
        "y" | "Y" => "MMMM yyyy",
        other if other.chars().count() == 1 => {
            return Err(format!("does not know the standard date format {other:?}"));
        }
        other => other,
    };
    Ok(render_custom(time, kind, custom))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn render_custom(time: NaiveDateTime, kind: Kind, format: &str) -> String {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        match c {
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .map_or(chars.len(), |p| i + 1 + p);
                out.extend(&chars[i + 1..end]);
                i = end + 1;
                continue;
            }
            '\\' if i + 1 < chars.len() => {
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            'y' => match run {
                1 => out.push_str(&(time.year() % 100).to_string()),
                2 => out.push_str(&format!("{:02}", time.year() % 100)),
                n => out.push_str(&format!("{:0n$}", time.year())),
            },
            'M' => match run {
                1 => out.push_str(&time.month().to_string()),
                2 => out.push_str(&format!("{:02}", time.month())),
                3 => out.push_str(&MONTHS[time.month0() as usize][..3]),
                _ => out.push_str(MONTHS[time.month0() as usize]),
            },
            'd' => match run {
                1 => out.push_str(&time.day().to_string()),
                2 => out.push_str(&format!("{:02}", time.day())),
                3 => out.push_str(&DAYS[time.weekday().num_days_from_sunday() as usize][..3]),
                _ => out.push_str(DAYS[time.weekday().num_days_from_sunday() as usize]),
            },
            'H' => out.push_str(&pad(time.hour(), run)),
            'h' => out.push_str(&pad(time.hour12().1, run)),
            'm' => out.push_str(&pad(time.minute(), run)),
            's' => out.push_str(&pad(time.second(), run)),
            'f' | 'F' => {
                let digits = format!("{:09}", time.nanosecond() % 1_000_000_000);
                let mut part = digits[..run.min(7)].to_owned();
                if c == 'F' {
                    part = part.trim_end_matches('0').to_owned();
                    if part.is_empty() && out.ends_with('.') {
                        out.pop();
                    }
                }
                out.push_str(&part);
            }
            't' => {
                let marker = if time.hour12().0 { "PM" } else { "AM" };
                out.push_str(if run == 1 { &marker[..1] } else { marker });
            }
            'K' if kind == Kind::Utc => out.push('Z'),
            'K' => {}
            'z' => out.push_str(match run {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            other => {
                for _ in 0..run {
                    out.push(other);
                }
            }
        }
        i += run;
    }
    out
}

fn pad(value: u32, width: usize) -> String {
    if width >= 2 {
        format!("{value:02}")
    } else {
        value.to_string()
    }
}

/// The subset of .NET custom formats `parseDateTime` reads, as a chrono format string.
fn dotnet_to_strftime(format: &str) -> Result<String, String> {
    let chars: Vec<char> = format.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        let piece = match (c, run) {
            ('y', 4) => "%Y",
            ('y', 2) => "%y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1 | 2) => "%d",
            ('H', 1 | 2) => "%H",
            ('h', 1 | 2) => "%I",
            ('m', 1 | 2) => "%M",
            ('s', 1 | 2) => "%S",
            ('t', _) => "%p",
            ('f', _) => "%.f",
            ('y' | 'd' | 'H' | 'h' | 'm' | 's', _) => {
                return Err(format!(
                    "cannot parse with the format piece {:?}",
                    chars[i..i + run].iter().collect::<String>()
                ));
            }
            _ => {
                for _ in 0..run {
                    if c == '%' {
                        out.push_str("%%");
                    } else if c != '\'' {
                        out.push(c);
                    }
                }
                i += run;
                continue;
            }
        };
        out.push_str(piece);
        i += run;
    }
    Ok(out)
}
