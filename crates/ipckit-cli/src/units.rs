//! The command's one grammar for sizes and one for durations: every flag that takes a SIZE or a
//! DURATION parses it here (as a clap `value_parser`, so a bad value is a usage error, exit 2).
//!
//! - Sizes follow ipcmk(1) (util-linux `strtosize`): a decimal number of bytes, optionally followed
//!   by K, M, G, T, P or E (either case), alone or with `iB`, each a power of 1024 (`4K` = `4KiB` =
//!   4096), or with `B`, a power of 1000 (`4KB` = 4000). With a suffix the number may have a
//!   fraction (`1.5K` = 1536, `1.5KB` = 1500), rounded down to whole bytes; a bare number of bytes
//!   may not (`1.5` is refused, as ipcmk refuses it). util-linux adds the fraction digit by digit,
//!   each rounded down, so for a few values it is a byte or so short of the exact product
//!   (`1.25K`: ipcmk 1279, ipckit 1280); ipckit takes the exact product.
//! - Durations follow the `humantime` crate: a number and a unit, possibly several (`500ms`, `30s`,
//!   `10m`, `2h`, `1d`, `1h30m`, `1.5h`); a bare number has no unit and is refused.

use std::time::Duration;

/// A size in bytes, as ipcmk(1) reads it (see the module documentation).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "{s:?} is not a size: give a number of bytes, optionally followed by K, M, G, T, P or E \
             (KiB…: powers of 1024; KB…: powers of 1000), e.g. 4096, 64K, 1.5M"
        )
    };
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, rest) = s.split_at(digits);
    if number.is_empty() {
        return Err(bad());
    }
    // A fraction: digits after a point (`1.5K`; `1.K` is 1K, as in util-linux).
    let (fraction, suffix) = match rest.strip_prefix('.') {
        Some(after) => {
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    let mut chars = suffix.chars();
    let (power, base) = match chars.next() {
        // Bytes are whole: a fraction needs a suffix.
        None if fraction.is_some() => return Err(bad()),
        None => (0, 1024u64),
        Some(letter) => {
            let power = match letter.to_ascii_uppercase() {
                'K' => 1,
                'M' => 2,
                'G' => 3,
                'T' => 4,
                'P' => 5,
                'E' => 6,
                _ => return Err(bad()),
            };
            let base = match chars.as_str() {
                "" | "iB" | "ib" => 1024,
                "B" | "b" => 1000,
                _ => return Err(bad()),
            };
            (power, base)
        }
    };
    let too_large = || format!("size {s} is too large");
    let number: u64 = number.parse().map_err(|_| too_large())?;
    let scale = base.checked_pow(power).ok_or_else(too_large)?;
    let whole = number.checked_mul(scale).ok_or_else(too_large)?;
    let part = fraction.map_or(0, |f| fraction_of(f, scale));
    whole.checked_add(part).ok_or_else(too_large)
}

/// `0.DIGITS × scale`, rounded down. Digits past the 19th are ignored: with `scale` at most
/// 2⁶⁰ they change the product by less than a byte, and 19 digits times 2⁶⁰ fit in a u128.
fn fraction_of(digits: &str, scale: u64) -> u64 {
    let digits = &digits.as_bytes()[..digits.len().min(19)];
    let (mut numerator, mut denominator) = (0u128, 1u128);
    for d in digits {
        numerator = numerator * 10 + u128::from(d - b'0');
        denominator *= 10;
    }
    // Less than `scale`, so it fits in a u64.
    (numerator * u128::from(scale) / denominator) as u64
}

/// A duration, as the `humantime` crate reads it (see the module documentation).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| {
        format!("{s:?} is not a duration ({e}): give e.g. 500ms, 30s, 10m, 1h30m or 1d")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_ipcmks_suffixes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        for s in ["4K", "4k", "4KiB", "4kib"] {
            assert_eq!(parse_size(s), Ok(4096), "{s}");
        }
        assert_eq!(parse_size("4KB"), Ok(4000));
        assert_eq!(parse_size("4kb"), Ok(4000));
        assert_eq!(parse_size("3M"), Ok(3 << 20));
        assert_eq!(parse_size("3MiB"), Ok(3 << 20));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1P"), Ok(1 << 50));
        assert_eq!(parse_size("15E"), Ok(15 << 60));
        assert_eq!(parse_size("1EB"), Ok(1_000_000_000_000_000_000));
    }

    #[test]
    fn sizes_with_a_suffix_take_a_fraction_as_ipcmk_does() {
        // The values util-linux 2.38's ipcmk gives these (ipcmk -M SIZE; ipcs -m).
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size("1.001K"), Ok(1025));
        assert_eq!(parse_size("1.0005K"), Ok(1024));
        assert_eq!(parse_size("1.5MiB"), Ok(1_572_864));
        assert_eq!(parse_size("1.K"), Ok(1024));
        // The exact product, where util-linux's digit-by-digit sum gives 1279.
        assert_eq!(parse_size("1.25K"), Ok(1280));
        assert_eq!(parse_size("2.5G"), Ok(5 << 29));
        assert_eq!(parse_size("15.9999999999999999999999E"), Ok(u64::MAX));
        assert!(parse_size("16.0E").unwrap_err().contains("too large"));
        for bad in [
            "1.5", "1.", ".5K", "1..5K", "1.5.K", "1,5K", "1.-5K", "1.5 K",
        ] {
            assert!(
                parse_size(bad).unwrap_err().contains("not a size"),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn garbage_sizes_are_refused() {
        for bad in [
            "", "K", "KiB", "12Q", "4 K", " 4", "4 ", "-4", "+4", "4iB", "4Ki", "4KiBB", "4Bi",
            "4BB", "0x10", "1.5", "4B", "1Z", "1Y",
        ] {
            assert!(
                parse_size(bad).unwrap_err().contains("not a size"),
                "{bad:?} parsed"
            );
        }
    }

    #[test]
    fn sizes_that_overflow_are_refused() {
        for big in [
            "18446744073709551616",
            "99999999999999999999999G",
            "16E",
            "16777216T",
        ] {
            assert!(parse_size(big).unwrap_err().contains("too large"), "{big}");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn durations_take_units_and_combine() {
        let ms = |s| parse_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("0s"), Ok(0));
        assert_eq!(ms("100ms"), Ok(100));
        assert_eq!(ms("2s"), Ok(2000));
        assert_eq!(ms("10m"), Ok(600_000));
        assert_eq!(ms("2h"), Ok(7_200_000));
        assert_eq!(ms("1d"), Ok(86_400_000));
        assert_eq!(ms("1h30m"), Ok(5_400_000));
        assert_eq!(ms("1h 30m"), Ok(5_400_000));
        assert_eq!(ms("1.5h"), Ok(5_400_000));
    }

    #[test]
    fn durations_without_a_unit_or_out_of_range_are_refused() {
        for bad in [
            "",
            "10",
            "m",
            "10x",
            "-1s",
            "1.5",
            "soon",
            "99999999999999999999d",
        ] {
            assert!(
                parse_duration(bad).unwrap_err().contains("not a duration"),
                "{bad:?} parsed"
            );
        }
    }
}
