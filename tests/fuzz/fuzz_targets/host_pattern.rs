//! Host patterns and destination URLs: parsing never panics, and matching obeys the rules
//! that do not depend on the pattern's internals.
//!
//! Input: a pattern, a newline, a URL; optionally a newline and a second pattern, which is
//! checked against the first with `covers`.
#![no_main]

use cordon_core::host_pattern::{Destination, HostPattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, rest) = text.split_once('\n').unwrap_or((text, "https://example.com/"));
    let (url, inner) = rest.split_once('\n').unwrap_or((rest, ""));
    let pattern = HostPattern::parse(pattern);
    let destination = Destination::parse(url);
    let (Ok(pattern), Ok(destination)) = (pattern, destination) else {
        return;
    };
    let matched = pattern.matches(&destination);
    // The text a pattern keeps is the text it was parsed from, and means the same again.
    let again = HostPattern::parse(pattern.as_str()).expect("a pattern's own text parses");
    assert_eq!(again.matches(&destination), matched);
    // An https pattern never lets a request go out over plain http, and the other way round.
    // The scheme as the WHATWG parser sees it: tabs and newlines removed anywhere, leading
    // C0 controls and spaces dropped, case folded.
    // The scheme is everything before the first colon, however short the URL: "https:1" is
    // a complete URL to that parser.
    let cleaned: String = url.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let scheme = cleaned
        .trim_start_matches(|c: char| c <= ' ')
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default();
    if matched && pattern.as_str().starts_with("https://") {
        assert_eq!(scheme, "https", "{} matched {url:?}", pattern.as_str());
    }
    if matched && pattern.as_str().starts_with("http://") {
        assert_eq!(scheme, "http", "{} matched {url:?}", pattern.as_str());
    }
    // A pattern that covers another matches everything the other matches: an upgrade
    // whose requests are covered by the grant gains nothing the grant did not allow.
    if let Ok(inner) = HostPattern::parse(inner)
        && pattern.covers(&inner)
        && inner.matches(&destination)
    {
        assert!(matched, "{} covers {} but not {url:?}", pattern.as_str(), inner.as_str());
    }
});
