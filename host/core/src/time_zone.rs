//! Time zone names as workflows write them.
//!
//! Logic Apps names zones the Windows way (`"Pacific Standard Time"`,
//! `"W. Europe Standard Time"`), in recurrences and in `convertTimeZone` and its siblings.
//! Each Windows name becomes the IANA zone CLDR's windowsZones table calls its world-wide
//! default (territory `001`: Pacific Standard Time is America/Los_Angeles), through the
//! `localzone` crate, which generates that table from CLDR; the tz database itself is
//! chrono-tz's. IANA names (`"Europe/Berlin"`) are taken as they are.

use chrono_tz::Tz;

/// The zone `name` names, as an IANA name or a Windows one.
pub fn parse(name: &str) -> Result<Tz, String> {
    if let Ok(zone) = name.parse::<Tz>() {
        return Ok(zone);
    }
    localzone::win_zone_to_iana(name, Some("001"))
        .and_then(|iana| iana.parse::<Tz>().ok())
        .ok_or_else(|| {
            format!(
                "unknown time zone {name:?}; write a Windows name such as \"W. Europe Standard Time\" \
                 (as Logic Apps does) or an IANA name such as \"Europe/Berlin\""
            )
        })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn windows_and_iana_names() {
        let cases = [
            ("Pacific Standard Time", "America/Los_Angeles"),
            ("W. Europe Standard Time", "Europe/Berlin"),
            ("India Standard Time", "Asia/Calcutta"),
            ("UTC", "UTC"),
            ("Europe/Berlin", "Europe/Berlin"),
            ("America/New_York", "America/New_York"),
        ];
        for (name, iana) in cases {
            assert_eq!(parse(name).map(|z| z.name()), Ok(iana), "{name}");
        }
        for unknown in ["Mars Standard Time", "pacific standard time", ""] {
            let error = parse(unknown).expect_err(unknown);
            assert!(error.contains("unknown time zone"), "{error}");
        }
    }

    #[test]
    fn every_windows_name_resolves_in_the_tz_database() {
        // The CLDR table names some zones by links (Asia/Calcutta); chrono-tz must know each.
        let unresolved: Vec<&str> = WINDOWS_NAMES
            .iter()
            .copied()
            .filter(|name| parse(name).is_err())
            .collect();
        assert!(unresolved.is_empty(), "{unresolved:?}");
    }

    /// Windows names common in Logic Apps definitions, across every continent.
    const WINDOWS_NAMES: &[&str] = &[
        "Dateline Standard Time",
        "Hawaiian Standard Time",
        "Alaskan Standard Time",
        "Pacific Standard Time",
        "Mountain Standard Time",
        "US Mountain Standard Time",
        "Central Standard Time",
        "Central Standard Time (Mexico)",
        "Eastern Standard Time",
        "Atlantic Standard Time",
        "Newfoundland Standard Time",
        "E. South America Standard Time",
        "Argentina Standard Time",
        "GMT Standard Time",
        "Greenwich Standard Time",
        "W. Europe Standard Time",
        "Central Europe Standard Time",
        "Romance Standard Time",
        "E. Europe Standard Time",
        "FLE Standard Time",
        "GTB Standard Time",
        "Israel Standard Time",
        "South Africa Standard Time",
        "Russian Standard Time",
        "Arabian Standard Time",
        "Iran Standard Time",
        "Pakistan Standard Time",
        "India Standard Time",
        "Nepal Standard Time",
        "SE Asia Standard Time",
        "China Standard Time",
        "Singapore Standard Time",
        "Tokyo Standard Time",
        "Korea Standard Time",
        "AUS Eastern Standard Time",
        "Cen. Australia Standard Time",
        "New Zealand Standard Time",
        "Tonga Standard Time",
        "Line Islands Standard Time",
        "UTC",
        "UTC-11",
        "UTC+12",
    ];
}
