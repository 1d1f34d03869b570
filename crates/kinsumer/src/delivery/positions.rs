//! The positions of a batch's records, kept apart from the records themselves
//! (which move to the caller) in one buffer per batch instead of one allocation per record.

use crate::record::{Position, SequenceNumber};

/// Positions by record index: sequence-number text packed into one string.
#[derive(Debug, Default)]
pub(crate) struct PositionLog {
    text: String,
    /// (start, end) of the sequence number in `text`, and the sub-sequence number, per record.
    entries: Vec<(u32, u32, Option<u64>)>,
}

impl PositionLog {
    pub(crate) fn with_capacity(records: usize) -> Self {
        PositionLog {
            text: String::with_capacity(records * 56),
            entries: Vec::with_capacity(records),
        }
    }

    /// Appends the position of the next record.
    pub(crate) fn push(&mut self, sequence: &SequenceNumber, sub_sequence: Option<u64>) {
        // User records of one aggregate share their sequence number: store its text once.
        let (start, end) = match self.entries.last() {
            Some(&(s, e, _)) if &self.text[s as usize..e as usize] == sequence.as_str() => (s, e),
            _ => {
                let start = self.text.len();
                self.text.push_str(sequence.as_str());
                (to_u32(start), to_u32(self.text.len()))
            }
        };
        self.entries.push((start, end, sub_sequence));
    }

    /// Number of positions.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The position of record `index`.
    pub(crate) fn get(&self, index: usize) -> Option<Position> {
        let &(start, end, sub_sequence) = self.entries.get(index)?;
        Some(Position {
            sequence: SequenceNumber::new(&self.text[start as usize..end as usize]),
            sub_sequence,
        })
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_positions_and_shares_repeated_text() {
        let mut log = PositionLog::with_capacity(4);
        let a = SequenceNumber::new("100");
        let b = SequenceNumber::new("2000");
        log.push(&a, None);
        log.push(&b, Some(0));
        log.push(&b, Some(1));
        log.push(&b, None);
        log.push(&SequenceNumber::new("30000"), None);
        assert_eq!(log.len(), 5);
        assert_eq!(log.get(0), Some(Position::after(a)));
        assert_eq!(
            log.get(1),
            Some(Position {
                sequence: b.clone(),
                sub_sequence: Some(0)
            })
        );
        assert_eq!(
            log.get(2),
            Some(Position {
                sequence: b.clone(),
                sub_sequence: Some(1)
            })
        );
        assert_eq!(log.get(3), Some(Position::after(b)));
        assert_eq!(
            log.get(4),
            Some(Position::after(SequenceNumber::new("30000")))
        );
        assert_eq!(log.get(5), None);
        assert_eq!(log.text, "100200030000");
    }
}
