//! Human durations as written in YAML: `250ms`, `1.5s`, `2m`, `1h`, or seconds.

use std::time::Duration;

/// Parses `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, `"10us"` or a bare number of seconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| {
        format!("'{text}' is not a duration; write for example 250ms, 1.5s, 2m or 1h")
    })?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" | "secs" => value,
        "ms" => value / 1_000.0,
        "us" | "µs" => value / 1_000_000.0,
        "m" | "min" | "mins" => value * 60.0,
        "h" => value * 3_600.0,
        other => {
            return Err(format!(
                "'{text}' has an unknown unit '{other}'; use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("'{text}' is out of range: {e}"))
}

/// A duration from a JSON value: a string as for [`parse`], or a number of seconds.
pub fn from_json(value: &serde_json::Value) -> Result<Duration, String> {
    match value {
        serde_json::Value::String(text) => parse(text),
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| format!("{n} is not a number of seconds"))
            .and_then(|secs| {
                Duration::try_from_secs_f64(secs).map_err(|e| format!("{n} seconds: {e}"))
            }),
        other => Err(format!(
            "expected a duration such as 500ms or 2s, found {other}"
        )),
    }
}

/// Formats a duration for people: `0.8 ms`, `12.3 ms`, `1.25 s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms < 1_000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1_000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse(" 10 s "), Ok(Duration::from_secs(10)));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        assert!(parse("soon").unwrap_err().contains("250ms"));
        assert!(parse("5 days").unwrap_err().contains("unknown unit"));
        assert!(parse("-1s").is_err());
    }

    #[test]
    fn reads_json_numbers_and_strings() {
        assert_eq!(
            from_json(&serde_json::json!(0.5)),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            from_json(&serde_json::json!("20ms")),
            Ok(Duration::from_millis(20))
        );
        assert!(from_json(&serde_json::json!(true)).is_err());
    }
}
