//! Pure: the prepaid balance in an operator's USSD answer, found with the configured pattern.
//!
//! Answers differ per operator and language ("Balance: 12.34 EUR", "Ihr Guthaben beträgt
//! 3,50 €", "Ваш баланс: 150.25 руб."), so `[selftest] credit_pattern` is a regex whose first
//! capture group (or whole match) is the amount. Both `12.34` and `12,34` are read as decimals;
//! a thousands separator is dropped when both appear (`1.234,56`, `1,234.56`).

use regex::Regex;

/// The amount `pattern` finds in `text`; `None` if it matches nothing or no number.
pub fn parse_amount(text: &str, pattern: &Regex) -> Option<f64> {
    let caps = pattern.captures(text)?;
    let m = caps.get(1).or_else(|| caps.get(0))?.as_str().trim();
    number(m)
}

/// `12,34` / `12.34` / `1.234,56` / `1,234.56` / `-3` to a float.
fn number(s: &str) -> Option<f64> {
    // A sentence's full stop or comma after the number is not a decimal separator.
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_end_matches(['.', ','])
        .to_string();
    let last_dot = s.rfind('.');
    let last_comma = s.rfind(',');
    let normal = match (last_dot, last_comma) {
        (Some(d), Some(c)) if d > c => s.replace(',', ""),
        (Some(_), Some(_)) => s.replace('.', "").replace(',', "."),
        (None, Some(_)) => s.replace(',', "."),
        _ => s,
    };
    normal.parse::<f64>().ok().filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> Regex {
        Regex::new(crate::config::selftest::DEFAULT_CREDIT_PATTERN).unwrap()
    }

    #[test]
    fn default_pattern_takes_the_first_number() {
        assert_eq!(parse_amount("Balance: 12.34 EUR", &default()), Some(12.34));
        assert_eq!(
            parse_amount("Ihr Guthaben beträgt 3,50 €", &default()),
            Some(3.5)
        );
        assert_eq!(
            parse_amount("Ваш баланс: 150.25 руб.", &default()),
            Some(150.25)
        );
        assert_eq!(parse_amount("Balance: -1.20 EUR", &default()), Some(-1.2));
        assert_eq!(parse_amount("no number here", &default()), None);
    }

    #[test]
    fn operator_pattern_skips_other_numbers() {
        let p = Regex::new(r"Guthaben: ([0-9.,]+)").unwrap();
        let text = "Tarif 2024: Guthaben: 1.234,56 EUR bis 31.12.";
        assert_eq!(parse_amount(text, &p), Some(1234.56));
        assert_eq!(parse_amount(text, &default()), Some(2024.0));
        let q = Regex::new(r"balance is \$([0-9.,]+)").unwrap();
        assert_eq!(
            parse_amount("Your balance is $1,234.56.", &q),
            Some(1234.56)
        );
    }

    #[test]
    fn pattern_without_group_uses_the_whole_match() {
        let p = Regex::new(r"\d+,\d\d").unwrap();
        assert_eq!(parse_amount("Rest 7,05 EUR", &p), Some(7.05));
    }
}
