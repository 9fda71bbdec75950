//! The business day: a genesis calendar (time zone offset, customer cut-off, end of day) and
//! the arithmetic that finds its instants on the certified block time.
//!
//! Every day is a business day. Times are milliseconds since the Unix epoch (UTC); a local
//! time of day is turned into an instant with the calendar's fixed offset from UTC. The
//! ledger keeps the next cut-off and end of day as instants and acts in the first block
//! whose time is at or after each (a chain that stalls over several days acts once, in its
//! first block after the stall).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds in a day.
pub const DAY_MS: u64 = 86_400_000;
const MINUTE_MS: u64 = 60_000;
/// Largest offset from UTC a calendar may have (UTC+14:00, Kiribati), in minutes.
pub const MAX_UTC_OFFSET_MINUTES: i16 = 14 * 60;

/// A local time of day in whole minutes after midnight, `"HH:MM"` in JSON (00:00–23:59).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `hours:minutes`, if it is a time of day.
    pub fn new(hours: u16, minutes: u16) -> Option<TimeOfDay> {
        (hours < 24 && minutes < 60)
            .then(|| hours.checked_mul(60).and_then(|h| h.checked_add(minutes)))
            .flatten()
            .map(TimeOfDay)
    }

    /// Minutes after midnight.
    pub fn minutes(self) -> u16 {
        self.0
    }

    fn millis(self) -> u64 {
        u64::from(self.0).saturating_mul(MINUTE_MS)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl std::str::FromStr for TimeOfDay {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?} is not a time of day HH:MM (00:00 to 23:59)");
        let (hours, minutes) = text.split_once(':').ok_or_else(bad)?;
        if hours.len() != 2 || minutes.len() != 2 {
            return Err(bad());
        }
        let hours: u16 = hours.parse().map_err(|_| bad())?;
        let minutes: u16 = minutes.parse().map_err(|_| bad())?;
        TimeOfDay::new(hours, minutes).ok_or_else(bad)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u16(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            text.parse().map_err(serde::de::Error::custom)
        } else {
            let minutes = u16::deserialize(deserializer)?;
            TimeOfDay::new(minutes / 60, minutes % 60)
                .ok_or_else(|| serde::de::Error::custom("time of day past 23:59"))
        }
    }
}

/// The business-day calendar of a chain (genesis `business_day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusinessDay {
    /// Local time's offset from UTC in minutes (60 for CET, −300 for EST).
    pub utc_offset_minutes: i16,
    /// Customer cut-off: from then until end of day, normal-priority customer transfers are
    /// refused and the queued ones rejected (`cutoff`); high priority still settles.
    pub customer_cutoff: TimeOfDay,
    /// End of day: the cycle closes and the day's report is kept.
    pub end_of_day: TimeOfDay,
}

impl BusinessDay {
    /// Whether the calendar is usable: the offset within ±14:00, the cut-off before the end
    /// of day.
    pub fn validate(&self) -> Result<(), String> {
        if self.utc_offset_minutes.unsigned_abs() > MAX_UTC_OFFSET_MINUTES.unsigned_abs() {
            return Err(format!(
                "utc_offset_minutes {} is beyond ±{MAX_UTC_OFFSET_MINUTES}",
                self.utc_offset_minutes
            ));
        }
        if self.customer_cutoff >= self.end_of_day {
            return Err(format!(
                "customer_cutoff {} must be before end_of_day {}",
                self.customer_cutoff, self.end_of_day
            ));
        }
        Ok(())
    }

    /// Local time as milliseconds since the epoch, shifted by the offset (saturating at the
    /// ends of `u64`: a block time near them has no meaningful local day anyway).
    fn local(&self, time_ms: u64) -> u64 {
        let offset = u64::from(self.utc_offset_minutes.unsigned_abs()).saturating_mul(MINUTE_MS);
        if self.utc_offset_minutes >= 0 {
            time_ms.saturating_add(offset)
        } else {
            time_ms.saturating_sub(offset)
        }
    }

    /// The UTC instant of local time `local_ms`.
    fn utc(&self, local_ms: u64) -> u64 {
        let offset = u64::from(self.utc_offset_minutes.unsigned_abs()).saturating_mul(MINUTE_MS);
        if self.utc_offset_minutes >= 0 {
            local_ms.saturating_sub(offset)
        } else {
            local_ms.saturating_add(offset)
        }
    }

    /// The local date of `time_ms`, as days since 1970-01-01.
    pub fn local_day(&self, time_ms: u64) -> u64 {
        self.local(time_ms) / DAY_MS
    }

    /// The first instant at or after `time_ms` whose local time of day is `at`.
    pub fn next_at_or_after(&self, at: TimeOfDay, time_ms: u64) -> u64 {
        let day = self.local_day(time_ms);
        let on = |day: u64| self.utc(day.saturating_mul(DAY_MS).saturating_add(at.millis()));
        let today = on(day);
        if today >= time_ms {
            today
        } else {
            on(day.saturating_add(1))
        }
    }

    /// The first instant strictly after `time_ms` whose local time of day is `at`.
    pub fn next_after(&self, at: TimeOfDay, time_ms: u64) -> u64 {
        self.next_at_or_after(at, time_ms.saturating_add(1))
    }
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01), in the proleptic Gregorian
/// calendar (H. Hinnant's `civil_from_days`).
// Every step is non-negative by construction and far below u64::MAX (the era is at most
// 2^64 / 146 097).
#[allow(clippy::arithmetic_side_effects)]
pub fn iso_date(days: u64) -> String {
    // Days since 0000-03-01: whole 400-year eras of 146 097 days, then the day in the era.
    let z = days.saturating_add(719_468);
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cet() -> BusinessDay {
        BusinessDay {
            utc_offset_minutes: 60,
            customer_cutoff: "17:00".parse().expect("valid"),
            end_of_day: "18:00".parse().expect("valid"),
        }
    }

    /// 2026-11-30T00:00:00Z in milliseconds.
    const NOV_30: u64 = 1_795_996_800_000;
    const HOUR: u64 = 3_600_000;

    #[test]
    fn times_of_day_parse_and_print_as_hh_mm_and_refuse_anything_else() {
        assert_eq!(
            "17:05".parse::<TimeOfDay>().expect("valid").minutes(),
            17 * 60 + 5
        );
        assert_eq!(
            "00:00".parse::<TimeOfDay>().expect("valid").to_string(),
            "00:00"
        );
        for bad in [
            "24:00", "7:00", "07:60", "0700", "", "aa:bb", "-1:00", "07:0a",
        ] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad} accepted");
        }
        let json = serde_json::to_string(&cet()).expect("valid");
        assert!(json.contains("\"17:00\""), "{json}");
        assert_eq!(
            serde_json::from_str::<BusinessDay>(&json).expect("valid"),
            cet()
        );
        let bytes = crate::codec::encode(&cet());
        assert_eq!(
            crate::codec::decode::<BusinessDay>(&bytes, 64).expect("valid"),
            cet()
        );
    }

    #[test]
    fn a_calendar_needs_its_cutoff_before_its_end_of_day_and_a_real_offset() {
        assert_eq!(cet().validate(), Ok(()));
        let mut late = cet();
        late.customer_cutoff = late.end_of_day;
        assert!(late.validate().is_err());
        let mut far = cet();
        far.utc_offset_minutes = 15 * 60;
        assert!(far.validate().is_err());
    }

    #[test]
    fn instants_follow_the_local_day_across_midnight_and_days() {
        let day = cet();
        assert_eq!(iso_date(day.local_day(NOV_30)), "2026-11-30");
        // 23:30Z on the 30th is 00:30 local on December 1st.
        assert_eq!(
            iso_date(day.local_day(NOV_30 + 23 * HOUR + HOUR / 2)),
            "2026-12-01"
        );
        // 17:00 CET is 16:00Z.
        let cutoff = day.next_at_or_after(day.customer_cutoff, NOV_30);
        assert_eq!(cutoff, NOV_30 + 16 * HOUR);
        assert_eq!(day.next_at_or_after(day.customer_cutoff, cutoff), cutoff);
        assert_eq!(day.next_after(day.customer_cutoff, cutoff), cutoff + DAY_MS);
        // From after today's end of day, the next is tomorrow's, three days on the day after.
        let eod = day.next_at_or_after(day.end_of_day, NOV_30);
        assert_eq!(eod, NOV_30 + 17 * HOUR);
        assert_eq!(day.next_after(day.end_of_day, eod + 1), eod + DAY_MS);
        assert_eq!(
            day.next_after(day.end_of_day, eod + 3 * DAY_MS),
            eod + 4 * DAY_MS
        );
        // West of UTC: midnight UTC is 19:00 the day before in New York, whose next 18:00
        // is 23:00Z.
        let ny = BusinessDay {
            utc_offset_minutes: -300,
            ..day
        };
        assert_eq!(iso_date(ny.local_day(NOV_30)), "2026-11-29");
        assert_eq!(
            ny.next_at_or_after(ny.end_of_day, NOV_30),
            NOV_30 + 23 * HOUR
        );
        // Extremes saturate rather than overflow.
        assert!(day.next_after(day.end_of_day, u64::MAX) >= u64::MAX - DAY_MS);
        assert_eq!(ny.local_day(0), 0);
    }

    #[test]
    fn iso_dates_match_known_days() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(59), "1970-03-01");
        assert_eq!(iso_date(11_016), "2000-02-29");
        assert_eq!(iso_date(20_787), "2026-11-30");
    }
}
