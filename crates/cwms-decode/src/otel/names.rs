//! CloudWatch's names for what OpenTelemetry encodes otherwise: units (UCUM codes, whose table
//! is `cwms_model::otel::UNITS`) and percentiles (quantiles).

use std::borrow::Cow;

use cwms_model::otel::UNITS;

/// `cwms_model::otel::cloudwatch_unit` of a code's bytes, before they are checked as UTF-8.
#[inline]
pub(crate) fn cloudwatch_unit_of_bytes(ucum: &[u8]) -> Option<&'static str> {
    UNITS.iter().find(|(_, code)| code.as_bytes() == ucum).map(|(name, _)| *name)
}

/// The quantile is not a percentile CloudWatch can stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OffGrid;

/// The name of the percentile at quantile `q` (strictly between 0 and 1): `0.99` is `p99`,
/// `0.999` is `p99.9`, `0.9545` is `p95.45`.
///
/// CloudWatch's percentiles have at most two decimals (`p0.01` to `p99.99`), so a quantile is a
/// whole number of ten-thousandths. Formatting `q * 100` would not give those names: in binary
/// floating point `0.57 * 100` is `56.99999999999999`, and the Collector's `99.9 / 100` is
/// `0.9990000000000001`. So the quantile is rounded to ten-thousandths, accepted only when it
/// lies within 10^-6 of one (a quantile from a decimal literal or from a division by 100 is within
/// 10^-12), and the name is written from that integer, without trailing zeros. Every name from
/// `p0.01` to `p99.99` comes back from both ways of computing its quantile (tested).
pub(crate) fn percentile_name(q: f64) -> Result<Cow<'static, str>, OffGrid> {
    let x = q * 10_000.0;
    let n = x.round();
    if !(1.0..=9_999.0).contains(&n) || (x - n).abs() > 1e-6 {
        return Err(OffGrid);
    }
    let n = n as u32;
    let (whole, hundredths) = (n / 100, n % 100);
    if hundredths == 0 {
        return Ok(Cow::Borrowed(WHOLE_PERCENTILES[whole as usize]));
    }
    // The usual tail percentiles, without an allocation either.
    let common = match n {
        9990 => Some("p99.9"),
        9999 => Some("p99.99"),
        9950 => Some("p99.5"),
        9995 => Some("p99.95"),
        10 => Some("p0.1"),
        1 => Some("p0.01"),
        _ => None,
    };
    if let Some(name) = common {
        return Ok(Cow::Borrowed(name));
    }
    Ok(Cow::Owned(if hundredths % 10 == 0 { format!("p{whole}.{}", hundredths / 10) } else { format!("p{whole}.{hundredths:02}") }))
}

/// `p0` to `p99`, so that whole percentiles (nearly all of them) cost no allocation.
const WHOLE_PERCENTILES: [&str; 100] = [
    "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8", "p9", "p10", "p11", "p12", "p13", "p14", "p15", "p16", "p17", "p18", "p19",
    "p20", "p21", "p22", "p23", "p24", "p25", "p26", "p27", "p28", "p29", "p30", "p31", "p32", "p33", "p34", "p35", "p36", "p37", "p38",
    "p39", "p40", "p41", "p42", "p43", "p44", "p45", "p46", "p47", "p48", "p49", "p50", "p51", "p52", "p53", "p54", "p55", "p56", "p57",
    "p58", "p59", "p60", "p61", "p62", "p63", "p64", "p65", "p66", "p67", "p68", "p69", "p70", "p71", "p72", "p73", "p74", "p75", "p76",
    "p77", "p78", "p79", "p80", "p81", "p82", "p83", "p84", "p85", "p86", "p87", "p88", "p89", "p90", "p91", "p92", "p93", "p94", "p95",
    "p96", "p97", "p98", "p99",
];

#[cfg(test)]
mod tests {
    use cwms_model::otel::{cloudwatch_unit, percentile_quantile, ucum_unit};

    use super::*;

    #[test]
    fn units_map_both_ways_and_no_code_is_shared() {
        for (name, code) in UNITS {
            assert_eq!(cloudwatch_unit(code), Some(name));
            assert_eq!(ucum_unit(name), Some(code));
        }
        let mut codes: Vec<&str> = UNITS.iter().map(|(_, c)| *c).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), 27);
        assert_eq!(cloudwatch_unit("By/s"), Some("Bytes/Second"));
        assert_eq!(cloudwatch_unit("{Count}/s"), Some("Count/Second"));
        assert_eq!(cloudwatch_unit("NoneTranslated"), None);
        assert_eq!(cloudwatch_unit("Mbit"), None, "case matters: AWS writes MBit");
        assert_eq!(cloudwatch_unit("s/s"), None);
    }

    #[test]
    fn examples_from_the_docs() {
        let name = |q: f64| percentile_name(q).map(|n| n.into_owned());
        assert_eq!(name(0.99).as_deref(), Ok("p99"));
        assert_eq!(name(0.999).as_deref(), Ok("p99.9"));
        assert_eq!(name(0.5).as_deref(), Ok("p50"));
        assert_eq!(name(0.95).as_deref(), Ok("p95"));
        assert_eq!(name(0.9545).as_deref(), Ok("p95.45"));
        assert_eq!(name(0.001).as_deref(), Ok("p0.1"));
        assert_eq!(name(0.0001).as_deref(), Ok("p0.01"));
        assert_eq!(name(0.57).as_deref(), Ok("p57"), "0.57 * 100 is 56.99999999999999");
        assert_eq!(name(99.9 / 100.0).as_deref(), Ok("p99.9"), "the Collector's 0.9990000000000001");
        for off in [0.0, 1.0, 0.12345, 0.00001, 0.99999, 1e-12, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(name(off), Err(OffGrid), "{off}");
        }
    }

    /// Every CloudWatch percentile name, from its quantile written as a decimal (CloudWatch's
    /// own encoder) and from the name's number divided by 100 (what the Collector computes),
    /// comes back as the same name; and reading the name gives the decimal's quantile.
    #[test]
    fn every_percentile_name_round_trips() {
        for n in 1..=9_999u32 {
            let (whole, hundredths) = (n / 100, n % 100);
            let expected = match hundredths {
                0 => format!("p{whole}"),
                h if h % 10 == 0 => format!("p{whole}.{}", h / 10),
                h => format!("p{whole}.{h:02}"),
            };
            let decimal: f64 = format!("0.{n:04}").parse().unwrap();
            let divided: f64 = expected[1..].parse::<f64>().unwrap() / 100.0;
            assert_eq!(percentile_name(decimal).unwrap(), expected, "{decimal}");
            assert_eq!(percentile_name(divided).unwrap(), expected, "{divided}");
            assert_eq!(percentile_quantile(&expected), Some(decimal), "{expected}");
        }
    }

    #[test]
    fn names_that_are_not_percentiles_have_no_quantile() {
        for name in ["p", "p100", "p0", "p99.90", "p99.", "p.9", "p05", "p99.999", "p9a", "P99", "TM(10%:90%)", "p-1", "p+1", "p1e1"] {
            assert_eq!(percentile_quantile(name), None, "{name}");
        }
        assert_eq!(percentile_quantile("p0.5"), Some(0.005));
    }
}
