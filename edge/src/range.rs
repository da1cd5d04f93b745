//! Numeric settings checked against the range they make sense in, with that range in the error:
//! one definition for the command lines of `edge` and the trainer (as clap value parsers, which
//! also read the settings of `--config` files) and for the numbers a model's metadata carries. A
//! NaN, an infinity or a number out of range is refused where it enters, rather than turning into
//! a panic (`Duration` from 1e30 s), a 30 GB allocation or 452 "faces" later.

use std::fmt::Display;
use std::str::FromStr;

/// A parser of numbers from `min` to `max`, both included; NaN and infinities are refused.
pub fn within<T>(min: T, max: T) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync
where
    T: FromStr + PartialOrd + Display + Copy + Send + Sync,
    T::Err: Display,
{
    move |text: &str| {
        let value: T = text.trim().parse().map_err(|e| format!("{e}"))?;
        check(value, min, max)
    }
}

/// `value` if it lies from `min` to `max` (both included), else the error that says the range.
/// NaN compares false both ways, so it is out of every range.
pub fn check<T: PartialOrd + Display + Copy>(value: T, min: T, max: T) -> Result<T, String> {
    if value >= min && value <= max {
        Ok(value)
    } else {
        Err(format!("{value} is not a number from {min} to {max}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_outside_the_range_and_non_numbers_are_refused_with_the_range() {
        let p = within(0.0f32, 1.0);
        assert_eq!(p("0.5"), Ok(0.5));
        assert_eq!(p(" 1 "), Ok(1.0));
        for bad in ["2", "-1", "NaN", "inf", "-inf", "1e30"] {
            let err = p(bad).expect_err(bad);
            assert!(err.contains("from 0 to 1"), "{bad}: {err}");
        }
        assert!(p("half").is_err());
        let n = within(1usize, 4096);
        assert_eq!(n("16"), Ok(16));
        assert!(n("0").expect_err("0").contains("from 1 to 4096"));
        assert!(n("-3").is_err());
        assert!(check(f64::NAN, 0.0, 1.0).is_err());
    }
}
