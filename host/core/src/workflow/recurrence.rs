//! Logic Apps recurrences: `frequency`, `interval`, `startTime`, `timeZone` and `schedule`,
//! and the next occurrence after a given instant.
//!
//! - `Second`, `Minute` and `Hour` step a fixed duration from the start.
//! - `Day`, `Week` and `Month` step calendar days, weeks and months in the time zone, so a
//!   daily 09:00 stays 09:00 local across daylight-saving changes. A `schedule` picks the
//!   hours, minutes, week days (`Week`) or month days (`Month`, `-1` for the last day) within
//!   each step; what it leaves out comes from the start.
//! - `startTime` without an offset is local time in `timeZone` (UTC without one); a recurrence
//!   without a `startTime` starts when cordon first saw the trigger.
//! - A local time that a daylight-saving change skips does not occur that day; one that occurs
//!   twice fires at its first instant.
//!
//! `timeZone` takes the Windows names Logic Apps writes (`W. Europe Standard Time`) and IANA
//! names (`Europe/Berlin`); see [`crate::time_zone`].

use chrono::{
    DateTime, Datelike, Days, LocalResult, Months, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    Second,
    Minute,
    Hour,
    Day,
    Week,
    Month,
}

impl Frequency {
    fn parse(text: &str) -> Option<Frequency> {
        Some(match text.to_ascii_lowercase().as_str() {
            "second" => Frequency::Second,
            "minute" => Frequency::Minute,
            "hour" => Frequency::Hour,
            "day" => Frequency::Day,
            "week" => Frequency::Week,
            "month" => Frequency::Month,
            _ => return None,
        })
    }

    /// Logic Apps' largest interval for each frequency (about 16 months in all).
    fn max_interval(self) -> u32 {
        match self {
            Frequency::Second => 9_999_999,
            Frequency::Minute => 72_000,
            Frequency::Hour => 12_000,
            Frequency::Day => 500,
            Frequency::Week => 71,
            Frequency::Month => 16,
        }
    }

    fn fixed_seconds(self) -> Option<i64> {
        match self {
            Frequency::Second => Some(1),
            Frequency::Minute => Some(60),
            Frequency::Hour => Some(3600),
            _ => None,
        }
    }
}

/// The `schedule` of a recurrence. Empty lists mean "take it from the start".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Schedule {
    pub hours: Vec<u32>,
    pub minutes: Vec<u32>,
    pub week_days: Vec<Weekday>,
    /// 1 to 31, or -1 for the last day of the month.
    pub month_days: Vec<i32>,
}

impl Schedule {
    fn is_empty(&self) -> bool {
        self.hours.is_empty()
            && self.minutes.is_empty()
            && self.week_days.is_empty()
            && self.month_days.is_empty()
    }
}

/// A parsed `recurrence` object.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub interval: u32,
    /// The first instant, when `startTime` is given.
    pub start: Option<DateTime<Utc>>,
    pub time_zone: Tz,
    pub schedule: Schedule,
}

/// A problem in a `recurrence` object: the JSON path below it, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecurrenceError {
    pub path: String,
    pub message: String,
}

fn error(path: &str, message: impl Into<String>) -> RecurrenceError {
    RecurrenceError {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// How far [`Recurrence::next_after`] looks for a scheduled day: longer than the longest
/// cycle (71 weeks, 16 months), so a schedule that matches nothing ends the search.
const SEARCH_DAYS: u64 = 800;

impl Recurrence {
    /// Reads a `recurrence` object.
    pub fn parse(value: &Value) -> Result<Recurrence, RecurrenceError> {
        let Some(object) = value.as_object() else {
            return Err(error(
                "",
                "recurrence must be an object such as {\"frequency\": \"Minute\", \"interval\": 5}",
            ));
        };
        let frequency = match object.get("frequency").and_then(Value::as_str) {
            Some(text) => Frequency::parse(text).ok_or_else(|| {
                error(
                    ".frequency",
                    format!("unknown frequency {text:?}; use Second, Minute, Hour, Day, Week or Month"),
                )
            })?,
            None => return Err(error(".frequency", "recurrence needs a \"frequency\"")),
        };
        let interval = match object.get("interval") {
            None => 1,
            Some(v) => v
                .as_u64()
                .filter(|i| (1..=u64::from(frequency.max_interval())).contains(i))
                .ok_or_else(|| {
                    error(
                        ".interval",
                        format!(
                            "interval must be a whole number from 1 to {} for frequency {frequency:?}",
                            frequency.max_interval()
                        ),
                    )
                })? as u32,
        };
        let time_zone = match object.get("timeZone").and_then(Value::as_str) {
            None => Tz::UTC,
            Some(name) => crate::time_zone::parse(name).map_err(|message| error(".timeZone", message))?,
        };
        let start = match object.get("startTime").and_then(Value::as_str) {
            None => None,
            Some(text) => Some(parse_start(text, time_zone).ok_or_else(|| {
                error(
                    ".startTime",
                    format!("{text:?} is not a date and time such as 2026-01-31T09:00:00 (local to timeZone) or 2026-01-31T09:00:00Z"),
                )
            })?),
        };
        let schedule = match object.get("schedule") {
            None | Some(Value::Null) => Schedule::default(),
            Some(value) => parse_schedule(value, frequency)?,
        };
        Ok(Recurrence {
            frequency,
            interval,
            start,
            time_zone,
            schedule,
        })
    }

    /// The first occurrence strictly after `after`. `anchor` is the start of a recurrence
    /// without a `startTime`. `None` only when a schedule can never match (such as day 31 in
    /// a recurrence of every 12 months that starts in February).
    pub fn next_after(&self, after: DateTime<Utc>, anchor: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.start.unwrap_or(anchor);
        if let Some(unit) = self.frequency.fixed_seconds() {
            let step = unit * i64::from(self.interval);
            if after < start {
                return Some(start);
            }
            let elapsed = (after - start).num_seconds();
            let steps = elapsed / step + 1;
            return Some(start + chrono::Duration::seconds(steps * step));
        }
        let local_start = start.with_timezone(&self.time_zone).naive_local();
        if self.schedule.is_empty() {
            return self.next_calendar_step(local_start, start, after);
        }
        self.next_scheduled(local_start, start, after)
    }

    /// Without a schedule: the start's local time of day, every `interval` days, weeks or
    /// months.
    fn next_calendar_step(
        &self,
        local_start: NaiveDateTime,
        start: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if after < start {
            return Some(start);
        }
        let local_after = after.with_timezone(&self.time_zone).naive_local();
        let interval = u64::from(self.interval);
        // Jump close to `after`, then step: one step back covers a daylight-saving shift.
        let first = match self.frequency {
            Frequency::Day => (local_after - local_start).num_days().max(0) as u64 / interval,
            Frequency::Week => (local_after - local_start).num_days().max(0) as u64 / (7 * interval),
            _ => months_between(local_start.date(), local_after.date()).max(0) as u64 / interval,
        }
        .saturating_sub(1);
        for k in first..first + 8 {
            let local = match self.frequency {
                Frequency::Day => local_start.checked_add_days(Days::new(k * interval))?,
                Frequency::Week => local_start.checked_add_days(Days::new(7 * k * interval))?,
                _ => local_start.checked_add_months(Months::new(u32::try_from(k * interval).ok()?))?,
            };
            if let Some(instant) = self.instant(local)
                && instant > after
            {
                return Some(instant);
            }
        }
        None
    }

    /// With a schedule: walk the days from `after`, keep the days of the cycle the schedule
    /// names, and take the first scheduled time past `after`.
    fn next_scheduled(
        &self,
        local_start: NaiveDateTime,
        start: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let floor = after.max(start - chrono::Duration::seconds(1));
        let first_day = floor
            .with_timezone(&self.time_zone)
            .date_naive()
            .max(local_start.date());
        let hours = if self.schedule.hours.is_empty() {
            vec![local_start.hour()]
        } else {
            sorted(&self.schedule.hours)
        };
        let minutes = if self.schedule.minutes.is_empty() {
            vec![local_start.minute()]
        } else {
            sorted(&self.schedule.minutes)
        };
        let interval = i64::from(self.interval);
        for offset in 0..SEARCH_DAYS {
            let day = first_day.checked_add_days(Days::new(offset))?;
            let in_cycle = match self.frequency {
                Frequency::Day => (day - local_start.date()).num_days() % interval == 0,
                Frequency::Week => {
                    let weeks = (week_start(day) - week_start(local_start.date())).num_days() / 7;
                    let days = if self.schedule.week_days.is_empty() {
                        vec![local_start.weekday()]
                    } else {
                        self.schedule.week_days.clone()
                    };
                    weeks % interval == 0 && days.contains(&day.weekday())
                }
                _ => {
                    let months = months_between(local_start.date(), day);
                    let days = if self.schedule.month_days.is_empty() {
                        vec![local_start.day() as i32]
                    } else {
                        self.schedule.month_days.clone()
                    };
                    months % interval == 0 && days.iter().any(|d| is_month_day(day, *d))
                }
            };
            if !in_cycle {
                continue;
            }
            for hour in &hours {
                for minute in &minutes {
                    let Some(local) = day.and_hms_opt(*hour, *minute, 0) else {
                        continue;
                    };
                    if let Some(instant) = self.instant(local)
                        && instant > after
                        && instant >= start
                    {
                        return Some(instant);
                    }
                }
            }
        }
        None
    }

    /// A local time in the recurrence's zone as an instant: the earlier one when the time
    /// occurs twice, none when it is skipped.
    fn instant(&self, local: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => None,
        }
    }
}

fn parse_start(text: &str, zone: Tz) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M"))
        .ok()?;
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => None,
    }
}

fn parse_schedule(value: &Value, frequency: Frequency) -> Result<Schedule, RecurrenceError> {
    let Some(object) = value.as_object() else {
        return Err(error(".schedule", "schedule must be an object"));
    };
    let numbers = |key: &str, range: std::ops::RangeInclusive<i64>| -> Result<Vec<i64>, RecurrenceError> {
        let Some(value) = object.get(key) else {
            return Ok(Vec::new());
        };
        let bad = || {
            error(
                &format!(".schedule.{key}"),
                format!(
                    "{key} must be a list of whole numbers from {} to {}",
                    range.start(),
                    range.end()
                ),
            )
        };
        value
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|v| v.as_i64().filter(|n| range.contains(n)).ok_or_else(bad))
            .collect()
    };
    let hours = numbers("hours", 0..=23)?;
    let minutes = numbers("minutes", 0..=59)?;
    let month_days = numbers("monthDays", -1..=31)?;
    if month_days.contains(&0) {
        return Err(error(
            ".schedule.monthDays",
            "month days run from 1 to 31, or -1 for the last day",
        ));
    }
    let week_days = match object.get("weekDays") {
        None => Vec::new(),
        Some(v) => v
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.as_str().and_then(|d| d.parse::<Weekday>().ok()))
            .collect::<Option<Vec<_>>>()
            .filter(|_| v.is_array())
            .ok_or_else(|| {
                error(
                    ".schedule.weekDays",
                    "weekDays must be a list such as [\"Monday\", \"Friday\"]",
                )
            })?,
    };
    for key in object.keys() {
        if !["hours", "minutes", "weekDays", "monthDays"].contains(&key.as_str()) {
            return Err(error(
                &format!(".schedule.{key}"),
                format!("unknown schedule field {key:?}; use hours, minutes, weekDays or monthDays"),
            ));
        }
    }
    if !week_days.is_empty() && frequency != Frequency::Week {
        return Err(error(".schedule.weekDays", "weekDays applies to frequency Week"));
    }
    if !month_days.is_empty() && frequency != Frequency::Month {
        return Err(error(
            ".schedule.monthDays",
            "monthDays applies to frequency Month",
        ));
    }
    let allowed = match frequency {
        // Week days and month days were refused above; empty hours and minutes are no schedule.
        Frequency::Day => true,
        Frequency::Week => true,
        Frequency::Month => true,
        _ => false,
    };
    if !allowed && !object.is_empty() {
        return Err(error(
            ".schedule",
            format!("a schedule applies to frequency Day, Week or Month, not {frequency:?}"),
        ));
    }
    Ok(Schedule {
        hours: hours.into_iter().map(|h| h as u32).collect(),
        minutes: minutes.into_iter().map(|m| m as u32).collect(),
        week_days,
        month_days: month_days.into_iter().map(|d| d as i32).collect(),
    })
}

fn sorted(values: &[u32]) -> Vec<u32> {
    let mut values = values.to_vec();
    values.sort_unstable();
    values.dedup();
    values
}

/// The Monday of the week `day` falls in.
fn week_start(day: NaiveDate) -> NaiveDate {
    day - Days::new(u64::from(day.weekday().num_days_from_monday()))
}

fn months_between(from: NaiveDate, to: NaiveDate) -> i64 {
    (i64::from(to.year()) * 12 + i64::from(to.month0()))
        - (i64::from(from.year()) * 12 + i64::from(from.month0()))
}

fn is_month_day(day: NaiveDate, wanted: i32) -> bool {
    if wanted == -1 {
        return day
            .checked_add_days(Days::new(1))
            .is_none_or(|next| next.month() != day.month());
    }
    day.day() as i32 == wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test time")
            .with_timezone(&Utc)
    }

    /// The next `count` occurrences after `after`.
    fn occurrences(recurrence: Value, after: &str, count: usize) -> Vec<String> {
        let recurrence = Recurrence::parse(&recurrence).expect("valid recurrence");
        let anchor = at("2026-01-01T00:00:00Z");
        let mut now = at(after);
        let mut out = Vec::new();
        for _ in 0..count {
            let Some(next) = recurrence.next_after(now, anchor) else {
                break;
            };
            out.push(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            now = next;
        }
        out
    }

    #[test]
    fn schedules() {
        let cases: Vec<(&str, Value, &str, Vec<&str>)> = vec![
            (
                "every 15 seconds from the anchor",
                json!({"frequency": "Second", "interval": 15}),
                "2026-03-01T10:00:05Z",
                vec!["2026-03-01T10:00:15Z", "2026-03-01T10:00:30Z"],
            ),
            (
                "every 5 minutes from a start time",
                json!({"frequency": "Minute", "interval": 5, "startTime": "2026-03-01T10:02:00Z"}),
                "2026-03-01T10:07:00Z",
                vec!["2026-03-01T10:12:00Z", "2026-03-01T10:17:00Z"],
            ),
            (
                "a start in the future comes first",
                json!({"frequency": "Hour", "interval": 2, "startTime": "2026-05-01T08:30:00Z"}),
                "2026-03-01T00:00:00Z",
                vec!["2026-05-01T08:30:00Z", "2026-05-01T10:30:00Z"],
            ),
            (
                "daily at 09:00 Berlin keeps local time across the March change",
                json!({"frequency": "Day", "interval": 1, "startTime": "2026-03-27T09:00:00", "timeZone": "Europe/Berlin"}),
                "2026-03-27T12:00:00Z",
                vec![
                    "2026-03-28T08:00:00Z",
                    "2026-03-29T07:00:00Z",
                    "2026-03-30T07:00:00Z",
                ],
            ),
            (
                "the same, with the Windows name Logic Apps writes",
                json!({"frequency": "Day", "interval": 1, "startTime": "2026-03-27T09:00:00", "timeZone": "W. Europe Standard Time"}),
                "2026-03-27T12:00:00Z",
                vec![
                    "2026-03-28T08:00:00Z",
                    "2026-03-29T07:00:00Z",
                    "2026-03-30T07:00:00Z",
                ],
            ),
            (
                "an empty Day schedule is no schedule",
                json!({"frequency": "Day", "interval": 3, "startTime": "2026-01-01T06:00:00Z",
                       "schedule": {"hours": [], "minutes": []}}),
                "2026-01-02T00:00:00Z",
                vec!["2026-01-04T06:00:00Z", "2026-01-07T06:00:00Z"],
            ),
            (
                "every 3 days",
                json!({"frequency": "Day", "interval": 3, "startTime": "2026-01-01T06:00:00Z"}),
                "2026-01-02T00:00:00Z",
                vec!["2026-01-04T06:00:00Z", "2026-01-07T06:00:00Z"],
            ),
            (
                "daily at 08:15 and 17:45 via hours and minutes",
                json!({"frequency": "Day", "schedule": {"hours": [17, 8], "minutes": [15, 45]}}),
                "2026-02-10T09:00:00Z",
                vec![
                    "2026-02-10T17:15:00Z",
                    "2026-02-10T17:45:00Z",
                    "2026-02-11T08:15:00Z",
                ],
            ),
            (
                "Monday and Friday at 09:30, every other week",
                json!({"frequency": "Week", "interval": 2, "startTime": "2026-01-05T00:00:00Z",
                       "schedule": {"weekDays": ["Monday", "Friday"], "hours": [9], "minutes": [30]}}),
                "2026-01-05T10:00:00Z",
                vec![
                    "2026-01-09T09:30:00Z",
                    "2026-01-19T09:30:00Z",
                    "2026-01-23T09:30:00Z",
                ],
            ),
            (
                "the last day of every month at noon",
                json!({"frequency": "Month", "startTime": "2026-01-01T12:00:00Z", "schedule": {"monthDays": [-1]}}),
                "2026-01-15T00:00:00Z",
                vec![
                    "2026-01-31T12:00:00Z",
                    "2026-02-28T12:00:00Z",
                    "2026-03-31T12:00:00Z",
                ],
            ),
            (
                "monthly on the 31st keeps the 31st where it exists",
                json!({"frequency": "Month", "startTime": "2026-01-31T00:00:00Z"}),
                "2026-01-31T00:00:00Z",
                vec!["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"],
            ),
            (
                "a skipped local time does not occur that day",
                json!({"frequency": "Day", "startTime": "2026-03-28T02:30:00", "timeZone": "Europe/Berlin"}),
                "2026-03-28T12:00:00Z",
                vec!["2026-03-30T00:30:00Z"],
            ),
        ];
        for (name, recurrence, after, expected) in cases {
            assert_eq!(occurrences(recurrence, after, expected.len()), expected, "{name}");
        }
    }

    #[test]
    fn problems_name_the_field() {
        let cases = [
            (json!({"interval": 1}), ".frequency"),
            (json!({"frequency": "Fortnight"}), ".frequency"),
            (json!({"frequency": "Month", "interval": 17}), ".interval"),
            (
                json!({"frequency": "Day", "timeZone": "Mars Standard Time"}),
                ".timeZone",
            ),
            (json!({"frequency": "Day", "startTime": "tomorrow"}), ".startTime"),
            (
                json!({"frequency": "Minute", "schedule": {"hours": [1]}}),
                ".schedule",
            ),
            (
                json!({"frequency": "Day", "schedule": {"weekDays": ["Monday"]}}),
                ".schedule.weekDays",
            ),
            (
                json!({"frequency": "Week", "schedule": {"hours": [24]}}),
                ".schedule.hours",
            ),
            (
                json!({"frequency": "Month", "schedule": {"monthDays": [0]}}),
                ".schedule.monthDays",
            ),
            (
                json!({"frequency": "Week", "schedule": {"days": [1]}}),
                ".schedule.days",
            ),
        ];
        for (recurrence, path) in cases {
            let problem = Recurrence::parse(&recurrence).expect_err("should be refused");
            assert_eq!(problem.path, path, "{recurrence}: {}", problem.message);
        }
    }
}
