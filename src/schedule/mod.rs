//! On-call schedules (contract placeholder until the `oncall` branch lands).

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, NaiveTime, Utc, Weekday};

/// Length of one shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShiftLength {
    Hours(u32),
    Days(u32),
    Weeks(u32),
}

impl FromStr for ShiftLength {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("{s:?} is not a shift length; write e.g. \"12h\", \"1d\", \"1w\"");
        let (n, unit) = s.split_at(s.len().saturating_sub(1));
        let n: u32 = n.parse().map_err(|_| err())?;
        if n == 0 {
            return Err(err());
        }
        match unit {
            "h" => Ok(ShiftLength::Hours(n)),
            "d" => Ok(ShiftLength::Days(n)),
            "w" => Ok(ShiftLength::Weeks(n)),
            _ => Err(err()),
        }
    }
}

/// A weekly window in which a layer is on call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restriction {
    pub days: Vec<Weekday>,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl FromStr for Restriction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("{s:?} is not a window; write e.g. \"Mon-Fri 09:00-18:00\"");
        let (days, times) = s.trim().split_once(' ').ok_or_else(err)?;
        let (a, b) = times.split_once('-').ok_or_else(err)?;
        let start = NaiveTime::parse_from_str(a, "%H:%M").map_err(|_| err())?;
        let end = NaiveTime::parse_from_str(b, "%H:%M").map_err(|_| err())?;
        let mut out = Vec::new();
        for part in days.split(',') {
            match part.split_once('-') {
                Some((x, y)) => {
                    let (mut d, y) = (
                        x.parse::<Weekday>().map_err(|_| err())?,
                        y.parse::<Weekday>().map_err(|_| err())?,
                    );
                    out.push(d);
                    while d != y {
                        d = d.succ();
                        out.push(d);
                    }
                }
                None => out.push(part.parse::<Weekday>().map_err(|_| err())?),
            }
        }
        Ok(Restriction {
            days: out,
            start,
            end,
        })
    }
}

/// One rotation.
#[derive(Debug, Clone)]
pub struct Layer {
    pub name: String,
    pub users: Vec<String>,
    pub shift: ShiftLength,
    pub start: NaiveDateTime,
    pub restrictions: Vec<Restriction>,
}

/// Where an override came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideSource {
    Config,
    Runtime,
}

/// Someone taking the pager for a window.
#[derive(Debug, Clone)]
pub struct Override {
    pub id: Option<i64>,
    pub user: String,
    pub from: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub source: OverrideSource,
}

/// A schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub tz: chrono_tz::Tz,
    pub layers: Vec<Layer>,
    pub overrides: Vec<Override>,
}

/// Local time to UTC.
pub fn local_to_utc(tz: chrono_tz::Tz, t: NaiveDateTime) -> DateTime<Utc> {
    use chrono::TimeZone;
    tz.from_local_datetime(&t)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(|| Utc.from_utc_datetime(&t))
}
