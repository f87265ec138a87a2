//! The simulated message storages `"SM"` (SIM), `"ME"` (module) and `"MT"` (both), as
//! `AT+CPMS`, `AT+CMGR`, `AT+CMGL` and `AT+CMGD` see them (3GPP TS 27.005 §3.2.2).
//!
//! Owns only slots and indexes; what is stored (PDU text, decoded view) is made elsewhere.
//! `"MT"` is a view over both: its indexes run through the SIM's slots first, then the
//! module's, offset by the SIM's capacity (real modules differ here; docs/modem.md says how).

use std::fmt;
use std::str::FromStr;

/// Slots on the simulated SIM.
pub const SM_CAPACITY: usize = 30;
/// Slots in the simulated module memory.
pub const ME_CAPACITY: usize = 100;

/// A message storage name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mem {
    /// The SIM card.
    Sm,
    /// The module's own memory.
    Me,
    /// SIM and module together.
    Mt,
}

impl Mem {
    /// The name as written in AT commands.
    pub fn as_str(self) -> &'static str {
        match self {
            Mem::Sm => "SM",
            Mem::Me => "ME",
            Mem::Mt => "MT",
        }
    }
}

impl fmt::Display for Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mem {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "SM" => Ok(Mem::Sm),
            "ME" => Ok(Mem::Me),
            "MT" => Ok(Mem::Mt),
            _ => Err(s.to_string()),
        }
    }
}

/// What text mode shows of a stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextView {
    /// An SMS-DELIVER part.
    Deliver {
        from: String,
        scts: String,
        text: String,
    },
    /// An SMS-SUBMIT written with `AT+CMGW`.
    Submit {
        /// Destination.
        to: String,
        /// Text.
        text: String,
    },
    /// An SMS-STATUS-REPORT.
    StatusReport {
        reference: u8,
        recipient: String,
        scts: String,
        discharge: String,
        status: u8,
    },
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// `<stat>`: 0 received unread, 1 received read, 2 stored unsent, 3 stored sent.
    pub stat: u8,
    /// The PDU in hex as `AT+CMGR` shows it (SMSC field first).
    pub pdu: String,
    /// `<length>`: octets of the TPDU (without the SMSC field).
    pub tpdu_len: usize,
    /// The decoded view for text mode.
    pub text: TextView,
}

/// The SIM's and the module's slots.
#[derive(Debug, Clone)]
pub struct Storage {
    first_index: usize,
    sm: Vec<Option<Slot>>,
    me: Vec<Option<Slot>>,
}

impl Storage {
    /// Empty storages whose indexes start at `first_index` (0 on Quectel, 1 elsewhere).
    pub fn new(first_index: usize) -> Self {
        Self {
            first_index,
            sm: vec![None; SM_CAPACITY],
            me: vec![None; ME_CAPACITY],
        }
    }

    /// `(<used>, <total>)` for `AT+CPMS`.
    pub fn usage(&self, mem: Mem) -> (usize, usize) {
        let count = |v: &Vec<Option<Slot>>| v.iter().filter(|s| s.is_some()).count();
        match mem {
            Mem::Sm => (count(&self.sm), SM_CAPACITY),
            Mem::Me => (count(&self.me), ME_CAPACITY),
            Mem::Mt => (count(&self.sm) + count(&self.me), SM_CAPACITY + ME_CAPACITY),
        }
    }

    /// Whether `index` names a slot of `mem` (empty or not).
    pub fn valid_index(&self, mem: Mem, index: usize) -> bool {
        self.locate(mem, index).is_some()
    }

    fn locate(&self, mem: Mem, index: usize) -> Option<(bool, usize)> {
        let i = index.checked_sub(self.first_index)?;
        match mem {
            Mem::Sm => (i < SM_CAPACITY).then_some((true, i)),
            Mem::Me => (i < ME_CAPACITY).then_some((false, i)),
            Mem::Mt if i < SM_CAPACITY => Some((true, i)),
            Mem::Mt => (i - SM_CAPACITY < ME_CAPACITY).then_some((false, i - SM_CAPACITY)),
        }
    }

    fn slot_mut(&mut self, mem: Mem, index: usize) -> Option<&mut Option<Slot>> {
        let (sim, i) = self.locate(mem, index)?;
        Some(if sim {
            &mut self.sm[i]
        } else {
            &mut self.me[i]
        })
    }

    /// The message at `index`, if the slot is in use.
    pub fn get_mut(&mut self, mem: Mem, index: usize) -> Option<&mut Slot> {
        self.slot_mut(mem, index)?.as_mut()
    }

    /// Empties a slot; an empty or unknown slot is left alone.
    pub fn remove(&mut self, mem: Mem, index: usize) {
        if let Some(s) = self.slot_mut(mem, index) {
            *s = None;
        }
    }

    /// Keeps only messages for which `keep` holds.
    pub fn retain(&mut self, mem: Mem, keep: impl Fn(&Slot) -> bool) {
        let sm = matches!(mem, Mem::Sm | Mem::Mt);
        let me = matches!(mem, Mem::Me | Mem::Mt);
        for (on, slots) in [(sm, &mut self.sm), (me, &mut self.me)] {
            if on {
                for s in slots.iter_mut() {
                    if s.as_ref().is_some_and(|slot| !keep(slot)) {
                        *s = None;
                    }
                }
            }
        }
    }

    /// Stores a message in the lowest free slot; `None` when full.
    pub fn insert(&mut self, mem: Mem, slot: Slot) -> Option<usize> {
        let total = self.usage(mem).1;
        for k in 0..total {
            let index = k + self.first_index;
            let s = self.slot_mut(mem, index)?;
            if s.is_none() {
                *s = Some(slot);
                return Some(index);
            }
        }
        None
    }

    /// All messages of `mem` in index order.
    pub fn list_mut(&mut self, mem: Mem) -> Vec<(usize, &mut Slot)> {
        let first = self.first_index;
        let sm = self
            .sm
            .iter_mut()
            .enumerate()
            .filter(|_| matches!(mem, Mem::Sm | Mem::Mt));
        let me_offset = if mem == Mem::Mt { SM_CAPACITY } else { 0 };
        let me = self
            .me
            .iter_mut()
            .enumerate()
            .filter(|_| matches!(mem, Mem::Me | Mem::Mt))
            .map(move |(i, s)| (i + me_offset, s));
        sm.chain(me)
            .filter_map(|(i, s)| s.as_mut().map(|s| (i + first, s)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(text: &str) -> Slot {
        Slot {
            stat: 0,
            pdu: "00".into(),
            tpdu_len: 1,
            text: TextView::Deliver {
                from: "+49".into(),
                scts: String::new(),
                text: text.into(),
            },
        }
    }

    #[test]
    fn indexes_fill_from_the_first_and_reuse_freed_slots() {
        let mut s = Storage::new(1);
        assert_eq!(s.insert(Mem::Sm, slot("a")), Some(1));
        assert_eq!(s.insert(Mem::Sm, slot("b")), Some(2));
        s.remove(Mem::Sm, 1);
        assert_eq!(s.insert(Mem::Sm, slot("c")), Some(1));
        assert_eq!(s.usage(Mem::Sm), (2, SM_CAPACITY));
        assert!(!s.valid_index(Mem::Sm, 0));
        assert!(!s.valid_index(Mem::Sm, SM_CAPACITY + 1));
    }

    #[test]
    fn quectel_counts_from_zero() {
        let mut s = Storage::new(0);
        assert_eq!(s.insert(Mem::Me, slot("a")), Some(0));
        assert!(s.get_mut(Mem::Me, 0).is_some());
    }

    #[test]
    fn mt_spans_sim_then_module() {
        let mut s = Storage::new(1);
        for _ in 0..SM_CAPACITY {
            s.insert(Mem::Sm, slot("x"));
        }
        assert_eq!(s.insert(Mem::Mt, slot("y")), Some(SM_CAPACITY + 1));
        assert_eq!(s.usage(Mem::Me), (1, ME_CAPACITY));
        assert_eq!(s.usage(Mem::Mt).0, SM_CAPACITY + 1);
        assert_eq!(
            s.list_mut(Mem::Mt).last().map(|(i, _)| *i),
            Some(SM_CAPACITY + 1)
        );
        s.retain(Mem::Mt, |_| false);
        assert_eq!(s.usage(Mem::Mt).0, 0);
    }
}
