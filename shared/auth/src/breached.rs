//! The Pwned Passwords range protocol (k-anonymity), beside the offline list
//! of common passwords: only the first five hex digits of a password's SHA-1
//! leave the server; the answer lists every known suffix of that prefix with
//! how often it was seen, and the match is made here. The HTTP call is the
//! api-server's (`breaches.rs`); this is the protocol's arithmetic.

use sha1::{Digest as _, Sha1};

use crate::password::Password;

/// A password's SHA-1 in upper-case hex, split into the five digits that are
/// sent and the 35 that are not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    pub prefix: String,
    pub suffix: String,
}

impl RangeQuery {
    pub fn of(password: &Password) -> RangeQuery {
        let hex: String = Sha1::digest(password.expose().as_bytes())
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect();
        let (prefix, suffix) = hex.split_at(5);
        RangeQuery {
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }
    }

    /// How many breaches the range answer `body` (`SUFFIX:COUNT` lines)
    /// counts for this password: 0 when it is absent, or only padding
    /// (entries with count 0, which `Add-Padding: true` mixes in).
    pub fn count_in(&self, body: &str) -> u64 {
        body.lines()
            .filter_map(|line| line.trim().split_once(':'))
            .find(|(suffix, _)| suffix.eq_ignore_ascii_case(&self.suffix))
            .and_then(|(_, count)| count.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_five_hex_digits_are_sent_and_the_suffix_is_matched_here() {
        // SHA-1("P@ssw0rd!42x") computed independently (sha1sum).
        let password = Password::parse("P@ssw0rd!42x").unwrap();
        let query = RangeQuery::of(&password);
        assert_eq!(query.prefix, "1453E");
        assert_eq!(query.suffix, "249C08FF20DB9123F0157055D13A1FC925D");
        let body = format!(
            "0018A45C4D1DEF81644B54AB7F969B88D65:1\r\n{}:37\r\n00D4F6E8FA6EECAD2A3AA415EEC418D38EC:0\r\n",
            query.suffix.to_lowercase()
        );
        assert_eq!(query.count_in(&body), 37);
        assert_eq!(query.count_in("0018A45C4D1DEF81644B54AB7F969B88D65:1"), 0);
        let padded = format!("{}:0\n", query.suffix);
        assert_eq!(query.count_in(&padded), 0, "padding entries count 0");
    }
}
