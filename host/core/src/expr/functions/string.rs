//! String functions. `startsWith`, `endsWith`, `indexOf`, `lastIndexOf` and `nthIndexOf` ignore
//! case, as documented; `replace` and `contains` do not. Indexes count characters.

use serde_json::Value;

use super::super::bounds;
use super::super::value::to_text;
use super::{Args, ExprError, FunctionInfo, f, variadic};

pub(super) const FUNCTIONS: &[FunctionInfo] = &[
    variadic("concat", 1, concat),
    f("endsWith", 2, 2, ends_with),
    f("formatNumber", 2, 3, format_number),
    f("guid", 0, 1, guid),
    f("indexOf", 2, 2, index_of),
    f("isFloat", 1, 2, is_float),
    f("isInt", 1, 1, is_int),
    f("lastIndexOf", 2, 2, last_index_of),
    f("nthIndexOf", 3, 3, nth_index_of),
    f("replace", 3, 3, replace),
    f("slice", 2, 3, slice),
    f("split", 2, 2, split),
    f("startsWith", 2, 2, starts_with),
    f("substring", 2, 3, substring),
    f("toLower", 1, 1, to_lower),
    f("toUpper", 1, 1, to_upper),
    f("trim", 1, 1, trim),
];

fn concat(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(args.values()?.iter().map(to_text).collect()))
}

fn chars(text: &str) -> Vec<char> {
    text.chars().collect()
}

/// Character index of `needle` in `haystack`, ignoring case, from each match position.
fn match_positions(haystack: &str, needle: &str) -> Vec<usize> {
    let hay: Vec<char> = haystack.to_lowercase().chars().collect();
    let needle: Vec<char> = needle.to_lowercase().chars().collect();
    if needle.is_empty() {
        return vec![0];
    }
    (0..hay.len().saturating_sub(needle.len() - 1))
        .filter(|&i| hay[i..i + needle.len()] == needle[..])
        .collect()
}

fn ends_with(args: &Args<'_>) -> Result<Value, ExprError> {
    let (text, suffix) = (args.string(0)?, args.string(1)?);
    Ok(Value::Bool(text.to_lowercase().ends_with(&suffix.to_lowercase())))
}

fn starts_with(args: &Args<'_>) -> Result<Value, ExprError> {
    let (text, prefix) = (args.string(0)?, args.string(1)?);
    Ok(Value::Bool(
        text.to_lowercase().starts_with(&prefix.to_lowercase()),
    ))
}

fn index_of(args: &Args<'_>) -> Result<Value, ExprError> {
    let found = match_positions(&args.string(0)?, &args.string(1)?);
    Ok(Value::from(found.first().map_or(-1, |&i| i as i64)))
}

fn last_index_of(args: &Args<'_>) -> Result<Value, ExprError> {
    let (text, needle) = (args.string(0)?, args.string(1)?);
    if needle.is_empty() {
        return Ok(Value::from(text.chars().count() as i64));
    }
    let found = match_positions(&text, &needle);
    Ok(Value::from(found.last().map_or(-1, |&i| i as i64)))
}

fn nth_index_of(args: &Args<'_>) -> Result<Value, ExprError> {
    let found = match_positions(&args.string(0)?, &args.string(1)?);
    let n = args.integer(2)?;
    let index = match n {
        n if n > 0 => found.get(n as usize - 1),
        n if n < 0 => found
            .len()
            .checked_sub(n.unsigned_abs() as usize)
            .and_then(|i| found.get(i)),
        _ => return Err(args.error("counts occurrences from 1 (or from the end with -1); 0 is not valid")),
    };
    Ok(Value::from(index.map_or(-1, |&i| i as i64)))
}

fn replace(args: &Args<'_>) -> Result<Value, ExprError> {
    let (text, old, new) = (args.string(0)?, args.string(1)?, args.string(2)?);
    if old.is_empty() {
        return Err(args.error("cannot replace an empty string"));
    }
    if new.len() > old.len() {
        let grows_by = text
            .matches(old.as_str())
            .count()
            .saturating_mul(new.len() - old.len());
        bounds::check_size(text.len().saturating_add(grows_by))?;
    }
    Ok(Value::String(text.replace(&old, &new)))
}

/// Resolves a possibly negative index (counting from the end) into `0..=len`.
fn clamp_index(index: i64, len: usize) -> usize {
    if index < 0 {
        len.saturating_sub(index.unsigned_abs() as usize)
    } else {
        (index as usize).min(len)
    }
}

fn slice(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = chars(&args.string(0)?);
    let start = clamp_index(args.integer(1)?, text.len());
    let end = match args.optional(2)? {
        Some(_) => clamp_index(args.integer(2)?, text.len()),
        None => text.len(),
    };
    Ok(Value::String(if start < end {
        text[start..end].iter().collect()
    } else {
        String::new()
    }))
}

fn split(args: &Args<'_>) -> Result<Value, ExprError> {
    let (text, delimiter) = (args.string(0)?, args.string(1)?);
    // Checked before splitting, as chunk is: many tiny pieces take far more memory than text.
    let pieces = if delimiter.is_empty() {
        text.chars().count()
    } else {
        text.matches(delimiter.as_str()).count() + 1
    };
    bounds::check_pieces(text.len(), pieces)?;
    if delimiter.is_empty() {
        return Ok(Value::Array(
            text.chars().map(|c| Value::String(c.to_string())).collect(),
        ));
    }
    Ok(Value::Array(
        text.split(&delimiter)
            .map(|p| Value::String(p.to_owned()))
            .collect(),
    ))
}

fn substring(args: &Args<'_>) -> Result<Value, ExprError> {
    let text = chars(&args.string(0)?);
    let start = args.integer(1)?;
    let length = match args.optional(2)? {
        Some(_) => Some(args.integer(2)?),
        None => None,
    };
    // Checked: start and length are the workflow's integers, any of them in 64 bits.
    let range = usize::try_from(start).ok().and_then(|start| {
        let end = match length {
            Some(length) => start.checked_add(usize::try_from(length).ok()?)?,
            None => text.len(),
        };
        (start <= end && end <= text.len()).then_some(start..end)
    });
    let Some(range) = range else {
        let length = length.map_or_else(|| "the rest".to_owned(), |l| l.to_string());
        return Err(args.error(format!(
            "start {start} and length {length} are outside the string of {} characters",
            text.len()
        )));
    };
    Ok(Value::String(text[range].iter().collect()))
}

fn to_lower(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(args.string(0)?.to_lowercase()))
}

fn to_upper(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(args.string(0)?.to_uppercase()))
}

fn trim(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::String(args.string(0)?.trim().to_owned()))
}

fn is_int(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(args.string(0)?.trim().parse::<i64>().is_ok()))
}

fn is_float(args: &Args<'_>) -> Result<Value, ExprError> {
    Ok(Value::Bool(
        args.string(0)?.trim().parse::<f64>().is_ok_and(f64::is_finite),
    ))
}

fn guid(args: &Args<'_>) -> Result<Value, ExprError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| args.error(format!("has no random source: {e}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex = hex::encode(bytes);
    let dashed = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    );
    let format = args.optional_string(0)?.unwrap_or_else(|| "D".to_owned());
    Ok(Value::String(match format.as_str() {
        "N" | "n" => hex,
        "D" | "d" => dashed,
        "B" | "b" => format!("{{{dashed}}}"),
        "P" | "p" => format!("({dashed})"),
        other => return Err(args.error(format!("format {other:?} is not one of N, D, B, P"))),
    }))
}

/// `formatNumber(number, format, locale?)` with the .NET standard formats `C`, `D`, `E`, `F`,
/// `N`, `P`, `X` (with an optional precision) and custom patterns built from `0`, `#`, `,` and
/// `.`. Only the invariant culture (en-US separators) is implemented.
fn format_number(args: &Args<'_>) -> Result<Value, ExprError> {
    let number = args.number(0)?.as_f64();
    let format = args.string(1)?;
    let mut chars = format.chars();
    let letter = chars.next().unwrap_or('G');
    let precision: Option<usize> = chars.as_str().parse().ok();
    let standard =
        format.len() <= 3 && letter.is_ascii_alphabetic() && (format.len() == 1 || precision.is_some());
    let text = if standard {
        match letter.to_ascii_uppercase() {
            'C' => {
                let body = group_thousands(number.abs(), precision.unwrap_or(2));
                if number < 0.0 {
                    format!("-${body}")
                } else {
                    format!("${body}")
                }
            }
            'N' => signed(number, group_thousands(number.abs(), precision.unwrap_or(2))),
            'F' => format!("{:.*}", precision.unwrap_or(2), number),
            'P' => {
                signed(
                    number,
                    group_thousands((number * 100.0).abs(), precision.unwrap_or(2)),
                ) + " %"
            }
            'E' => format_exponent(number, precision.unwrap_or(6), letter.is_ascii_uppercase()),
            'D' => format!("{:0width$}", number as i64, width = precision.unwrap_or(0)),
            'X' => {
                let hex = format!("{:0width$x}", number as i64, width = precision.unwrap_or(0));
                if letter == 'X' { hex.to_uppercase() } else { hex }
            }
            'G' => to_text(&args.value(0)?),
            other => return Err(args.error(format!("does not know the standard format {other:?}"))),
        }
    } else {
        custom_number_format(number, &format)
    };
    Ok(Value::String(text))
}

fn signed(number: f64, body: String) -> String {
    if number < 0.0 { format!("-{body}") } else { body }
}

fn group_thousands(number: f64, decimals: usize) -> String {
    let fixed = format!("{number:.decimals$}");
    let (integer, fraction) = fixed
        .split_once('.')
        .map_or((fixed.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in integer.chars().enumerate() {
        if i > 0 && (integer.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match fraction {
        Some(f) => format!("{grouped}.{f}"),
        None => grouped,
    }
}

fn format_exponent(number: f64, precision: usize, upper: bool) -> String {
    let text = format!("{number:.precision$e}");
    let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let sign = if exponent < 0 { '-' } else { '+' };
    format!(
        "{mantissa}{}{sign}{:03}",
        if upper { 'E' } else { 'e' },
        exponent.abs()
    )
}

/// A custom pattern such as `0.00`, `#,##0.0` or `000`.
fn custom_number_format(number: f64, pattern: &str) -> String {
    let (integer_pattern, fraction_pattern) = pattern.split_once('.').unwrap_or((pattern, ""));
    let decimals = fraction_pattern
        .chars()
        .filter(|c| matches!(c, '0' | '#'))
        .count();
    let min_decimals = fraction_pattern.chars().filter(|&c| c == '0').count();
    let min_integer = integer_pattern.chars().filter(|&c| c == '0').count();
    let grouping = integer_pattern.contains(',');
    let fixed = format!("{:.decimals$}", number.abs());
    let (integer, fraction) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut integer = integer.trim_start_matches('0').to_owned();
    while integer.len() < min_integer {
        integer.insert(0, '0');
    }
    if grouping {
        let digits = integer.clone();
        integer.clear();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                integer.push(',');
            }
            integer.push(c);
        }
    }
    let mut fraction = fraction.to_owned();
    while fraction.len() > min_decimals && fraction.ends_with('0') {
        fraction.pop();
    }
    let body = if fraction.is_empty() {
        integer
    } else {
        format!("{integer}.{fraction}")
    };
    signed(number, if body.is_empty() { "0".to_owned() } else { body })
}
