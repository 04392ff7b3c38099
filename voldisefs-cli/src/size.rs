//! Parsing and printing byte sizes (`--capacity 2GiB`, `--chunk-size 1MiB`).
//!
//! A size is a number, optionally with a fraction, followed by an optional unit, case
//! insensitive, with optional spaces in between:
//!
//! - none or `B`: bytes;
//! - `K`, `Ki`, `KiB` (and `M`, `G`, `T` likewise): powers of 1024, as `dd` and most storage
//!   tools read them, so `--chunk-size 1M` is the power of two it looks like;
//! - `KB`, `MB`, `GB`, `TB`: powers of 1000.
//!
//! A fractional size is rounded down to whole bytes (`1.5K` is 1536).

/// The help text shown for every SIZE argument.
pub(crate) const SIZE_HELP: &str = "bytes, or with a unit: K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) or KB/MB/GB/TB (powers of 1000)";

/// Parses a size such as `1048576`, `64KiB`, `512M` or `1.5GB` into bytes.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(|| {
        format!(
            "unknown size unit {:?} in {text:?} (use {SIZE_HELP})",
            unit.trim()
        )
    })?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(format!("{text:?} is not a size ({SIZE_HELP})"));
    }
    let too_large = || format!("size {text:?} is too large");
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    if !fraction.is_empty() {
        if fraction.len() > 18 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{text:?} is not a size ({SIZE_HELP})"));
        }
        let scale = 10u128.pow(u32::try_from(fraction.len()).map_err(|_| too_large())?);
        let digits: u128 = fraction.parse().map_err(|_| too_large())?;
        bytes = bytes
            .checked_add(digits.checked_mul(multiplier).ok_or_else(too_large)? / scale)
            .ok_or_else(too_large)?;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Bytes per unit, or `None` for an unknown unit.
fn unit_multiplier(unit: &str) -> Option<u128> {
    let unit = unit.to_ascii_lowercase();
    let binary = |exp: u32| Some(1024u128.pow(exp));
    let decimal = |exp: u32| Some(1000u128.pow(exp));
    match unit.as_str() {
        "" | "b" => Some(1),
        "k" | "ki" | "kib" => binary(1),
        "m" | "mi" | "mib" => binary(2),
        "g" | "gi" | "gib" => binary(3),
        "t" | "ti" | "tib" => binary(4),
        "kb" => decimal(1),
        "mb" => decimal(2),
        "gb" => decimal(3),
        "tb" => decimal(4),
        _ => None,
    }
}

/// Formats a byte count for people: `512 B`, `64.0 KiB`, `1.5 GiB`.
pub(crate) fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    // Display only: the precision lost converting to f64 is far below what is printed.
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_bytes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("17B"), Ok(17));
        assert_eq!(parse_size(" 42 "), Ok(42));
    }

    #[test]
    fn binary_units() {
        assert_eq!(parse_size("64KiB"), Ok(64 * 1024));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("1Ti"), Ok(1 << 40));
        assert_eq!(parse_size("16 mib"), Ok(16 << 20));
        assert_eq!(parse_size("1k"), Ok(1024));
    }

    #[test]
    fn decimal_units() {
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
    }

    #[test]
    fn fractions_round_down() {
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("0.5GiB"), Ok(1 << 29));
        assert_eq!(parse_size(".5K"), Ok(512));
        assert_eq!(parse_size("1.0001K"), Ok(1024));
        assert_eq!(parse_size("2.5"), Ok(2));
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "K", "abc", "12XB", "-1", "1..5K", "1.2.3", "1 K B", "0x10", "1e6",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("16777216TiB").is_err());
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
    }

    #[test]
    fn formats_for_people() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1024), "1.0 KiB");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(1 << 20), "1.0 MiB");
        assert_eq!(format_size(3 << 30), "3.0 GiB");
        assert_eq!(format_size(u64::MAX), "16384.0 PiB");
    }
}
