//! Parsers of the benchmark file formats, from text the caller has read.
//!
//! Every error names the source (the file name the caller passes) and the 1-based line.

use super::{EvalError, Result};
use ndarray::Array2;
use std::collections::BTreeMap;

fn parse_err(source: &str, line: usize, message: impl Into<String>) -> EvalError {
    EvalError::Parse {
        source_name: source.to_owned(),
        line,
        message: message.into(),
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    // Shift the year to start in March so the leap day is the year's last day.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since 1970-01-01 00:00:00 of a `YYYY-MM-DD[ HH:MM:SS[.fraction]]` time (a `T` may
/// replace the space), read as UTC; `None` when the text is not such a time.
///
/// Both benchmarks write naive local times in this form; only differences and order matter
/// for scoring, so the time zone does not.
pub fn parse_datetime(s: &str) -> Option<f64> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = date.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = (days_from_civil(y, m, d) * 86_400) as f64;
    if let Some(t) = time {
        let (hms, frac) = match t.split_once('.') {
            Some((a, b)) => (a, Some(b)),
            None => (t, None),
        };
        let mut f = hms.split(':');
        let h: u32 = f.next()?.parse().ok()?;
        let mi: u32 = f.next()?.parse().ok()?;
        let se: u32 = f.next().map_or(Some(0), |x| x.parse().ok())?;
        if f.next().is_some() || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += f64::from(h * 3600 + mi * 60 + se);
        if let Some(frac) = frac {
            if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            secs += format!("0.{frac}").parse::<f64>().ok()?;
        }
    }
    Some(secs)
}

/// Column positions of `wanted` in a header split by `sep`; errors name the missing column.
fn columns(source: &str, header: &str, sep: char, wanted: &[&str]) -> Result<Vec<usize>> {
    let names: Vec<&str> = header.split(sep).map(str::trim).collect();
    wanted
        .iter()
        .map(|w| {
            names
                .iter()
                .position(|n| n == w)
                .ok_or_else(|| parse_err(source, 1, format!("no `{w}` column in the header")))
        })
        .collect()
}

fn field<'a>(source: &str, line: usize, fields: &[&'a str], col: usize) -> Result<&'a str> {
    fields.get(col).copied().ok_or_else(|| {
        parse_err(
            source,
            line,
            format!("expected at least {} fields", col + 1),
        )
    })
}

fn number(source: &str, line: usize, name: &str, text: &str) -> Result<f64> {
    text.trim()
        .parse::<f64>()
        .map_err(|_| parse_err(source, line, format!("{name} `{text}` is not a number")))
}

fn time(source: &str, line: usize, text: &str) -> Result<f64> {
    parse_datetime(text).ok_or_else(|| {
        parse_err(
            source,
            line,
            format!("`{text}` is not a YYYY-MM-DD HH:MM:SS time"),
        )
    })
}

/// Non-empty data lines with their 1-based line numbers, after the header.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .skip(1)
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// Times and one numeric column of a NAB-style CSV (comma-separated, header naming a
/// `timestamp` column).
fn nab_columns(source: &str, text: &str, value_col: &str) -> Result<(Vec<f64>, Vec<f64>)> {
    let header = text
        .lines()
        .next()
        .ok_or_else(|| parse_err(source, 0, "empty file"))?;
    let cols = columns(source, header, ',', &["timestamp", value_col])?;
    let (mut times, mut values) = (Vec::new(), Vec::new());
    for (line, l) in data_lines(text) {
        let fields: Vec<&str> = l.split(',').collect();
        times.push(time(source, line, field(source, line, &fields, cols[0])?)?);
        values.push(number(
            source,
            line,
            value_col,
            field(source, line, &fields, cols[1])?,
        )?);
    }
    Ok((times, values))
}

/// A NAB data file: `timestamp,value`.
#[derive(Debug, Clone, PartialEq)]
pub struct NabSeries {
    /// Row times, seconds since 1970 (see [`parse_datetime`]).
    pub times: Vec<f64>,
    /// Values.
    pub values: Vec<f64>,
}

/// Parses a NAB data file (`timestamp,value`, one row per line).
pub fn parse_nab_data(source: &str, text: &str) -> Result<NabSeries> {
    let (times, values) = nab_columns(source, text, "value")?;
    Ok(NabSeries { times, values })
}

/// Parses a NAB results file (`timestamp,value,anomaly_score,...`): row times and anomaly scores.
pub fn parse_nab_results(source: &str, text: &str) -> Result<NabSeries> {
    let (times, values) = nab_columns(source, text, "anomaly_score")?;
    Ok(NabSeries { times, values })
}

/// Parses NAB's `labels/combined_windows.json`: data file path (relative to `data/`, e.g.
/// `realKnownCause/nyc_taxi.csv`) to its `[start, end]` windows, as times in seconds.
pub fn parse_nab_windows(source: &str, text: &str) -> Result<BTreeMap<String, Vec<(f64, f64)>>> {
    let raw: BTreeMap<String, Vec<Vec<String>>> = serde_json::from_str(text)
        .map_err(|e| parse_err(source, e.line(), format!("not a NAB windows file: {e}")))?;
    raw.into_iter()
        .map(|(file, windows)| {
            let windows = windows
                .iter()
                .map(|w| match w.as_slice() {
                    [a, b] => {
                        let t = |s: &String| {
                            parse_datetime(s).ok_or_else(|| {
                                parse_err(source, 0, format!("{file}: `{s}` is not a time"))
                            })
                        };
                        Ok((t(a)?, t(b)?))
                    }
                    _ => Err(parse_err(
                        source,
                        0,
                        format!(
                            "{file}: a window must be [start, end], got {} items",
                            w.len()
                        ),
                    )),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((file, windows))
        })
        .collect()
}

/// A SKAB file: sensor readings and, for labelled files, the two label columns.
#[derive(Debug, Clone, PartialEq)]
pub struct SkabFile {
    /// Row times, seconds since 1970 (see [`parse_datetime`]).
    pub times: Vec<f64>,
    /// Names of the sensor columns, in file order.
    pub sensor_names: Vec<String>,
    /// One row per line, one column per sensor.
    pub sensors: Array2<f64>,
    /// The `anomaly` column (point labels), when present.
    pub anomaly: Option<Vec<bool>>,
    /// The `changepoint` column, when present.
    pub changepoint: Option<Vec<bool>>,
}

/// Parses a SKAB CSV: `;`-separated, a `datetime` column, sensor columns, and optionally the
/// `anomaly` and `changepoint` label columns (0/1, written as `0.0`/`1.0`). Every other column
/// is a sensor.
pub fn parse_skab(source: &str, text: &str) -> Result<SkabFile> {
    let header = text
        .lines()
        .next()
        .ok_or_else(|| parse_err(source, 0, "empty file"))?;
    let names: Vec<&str> = header.split(';').map(str::trim).collect();
    let time_col = columns(source, header, ';', &["datetime"])?[0];
    let find = |n: &str| names.iter().position(|c| *c == n);
    let (anomaly_col, cp_col) = (find("anomaly"), find("changepoint"));
    let sensor_cols: Vec<usize> = (0..names.len())
        .filter(|&c| c != time_col && Some(c) != anomaly_col && Some(c) != cp_col)
        .collect();
    if sensor_cols.is_empty() {
        return Err(parse_err(source, 1, "no sensor column"));
    }
    let mut times = Vec::new();
    let mut values = Vec::new();
    let mut anomaly = anomaly_col.map(|_| Vec::new());
    let mut changepoint = cp_col.map(|_| Vec::new());
    let flag = |line: usize, name: &str, text: &str| -> Result<bool> {
        let v = number(source, line, name, text)?;
        if v == 0.0 || v == 1.0 {
            Ok(v == 1.0)
        } else {
            Err(parse_err(
                source,
                line,
                format!("{name} must be 0 or 1, got {text}"),
            ))
        }
    };
    for (line, l) in data_lines(text) {
        let fields: Vec<&str> = l.split(';').collect();
        if fields.len() != names.len() {
            return Err(parse_err(
                source,
                line,
                format!("{} fields, the header has {}", fields.len(), names.len()),
            ));
        }
        times.push(time(source, line, fields[time_col])?);
        for &c in &sensor_cols {
            let v = number(source, line, names[c], fields[c])?;
            if !v.is_finite() {
                return Err(parse_err(
                    source,
                    line,
                    format!("{} is not finite", names[c]),
                ));
            }
            values.push(v);
        }
        if let (Some(col), Some(out)) = (anomaly_col, anomaly.as_mut()) {
            out.push(flag(line, "anomaly", fields[col])?);
        }
        if let (Some(col), Some(out)) = (cp_col, changepoint.as_mut()) {
            out.push(flag(line, "changepoint", fields[col])?);
        }
    }
    let sensors = Array2::from_shape_vec((times.len(), sensor_cols.len()), values)
        .map_err(|e| parse_err(source, 0, e.to_string()))?;
    Ok(SkabFile {
        times,
        sensor_names: sensor_cols.iter().map(|&c| names[c].to_owned()).collect(),
        sensors,
        anomaly,
        changepoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(parse_datetime("1970-01-02"), Some(86_400.0));
        // 2000 is a leap year: 2000-03-01 is 11017 days after the epoch.
        assert_eq!(
            parse_datetime("2000-03-01 00:00:01"),
            Some(11_017.0 * 86_400.0 + 1.0)
        );
        assert_eq!(
            parse_datetime("2014-04-10 07:15:00.000000"),
            parse_datetime("2014-04-10T07:15:00")
        );
        assert_eq!(
            parse_datetime("2014-04-10 07:15:00.5").map(|t| t.fract()),
            Some(0.5)
        );
        for bad in [
            "",
            "2014-13-01",
            "2014-04-10 25:00:00",
            "x",
            "2014-04-10 07:15:00.",
            "2014-04",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn nab_csv_and_errors_name_the_line() {
        let s = parse_nab_data(
            "a.csv",
            "timestamp,value\n2014-01-01 00:00:00,1.5\n2014-01-01 00:05:00,2\n",
        )
        .expect("parse");
        assert_eq!(s.values, vec![1.5, 2.0]);
        assert_eq!(s.times[1] - s.times[0], 300.0);
        let e = parse_nab_data("a.csv", "timestamp,value\n2014-01-01 00:00:00,x\n").unwrap_err();
        assert_eq!(e.to_string(), "a.csv:2: value `x` is not a number");
        let e = parse_nab_results("r.csv", "timestamp,value\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "r.csv:1: no `anomaly_score` column in the header"
        );
    }

    #[test]
    fn nab_windows_json() {
        let json = r#"{"a/x.csv": [], "a/y.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]]}"#;
        let w = parse_nab_windows("w.json", json).expect("parse");
        assert!(w["a/x.csv"].is_empty());
        assert_eq!(w["a/y.csv"].len(), 1);
        assert_eq!(w["a/y.csv"][0].1 - w["a/y.csv"][0].0, 33.5 * 3600.0);
        assert!(parse_nab_windows("w.json", r#"{"a": [["2014-04-10"]]}"#).is_err());
        assert!(parse_nab_windows("w.json", "{").is_err());
    }

    #[test]
    fn skab_csv() {
        let text = "datetime;A;B;anomaly;changepoint\n\
                    2020-03-09 10:14:33;1;2;0.0;0.0\n\
                    2020-03-09 10:14:34;3;4;1.0;1.0\n";
        let f = parse_skab("0.csv", text).expect("parse");
        assert_eq!(f.sensor_names, vec!["A", "B"]);
        assert_eq!(f.sensors, ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
        assert_eq!(f.anomaly, Some(vec![false, true]));
        assert_eq!(f.changepoint, Some(vec![false, true]));
        let free = parse_skab("free.csv", "datetime;A\n2020-03-09 10:14:33;1\n").expect("parse");
        assert_eq!(free.anomaly, None);
        let e = parse_skab("0.csv", "datetime;A;anomaly\n2020-03-09 10:14:33;1;0.5\n").unwrap_err();
        assert_eq!(e.to_string(), "0.csv:2: anomaly must be 0 or 1, got 0.5");
        let e = parse_skab("0.csv", "datetime;A\n2020-03-09 10:14:33\n").unwrap_err();
        assert_eq!(e.to_string(), "0.csv:2: 1 fields, the header has 2");
    }
}
