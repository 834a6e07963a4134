//! The rule a pushed batch must follow to continue a store's log.

use super::Event;

/// Why a pushed batch does not continue the store's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainError {
    /// `batch[0].parentSeqNum` is not the store's head: another client
    /// pushed first (or this client is ahead of a reset store).
    WrongParent { head: i64, parent: i64 },
    /// Inside the batch an event does not follow the one before it
    /// (`seqNum != parentSeqNum + 1`, or `parentSeqNum` is not the previous `seqNum`).
    Broken {
        index: usize,
        seq_num: i64,
        parent_seq_num: i64,
        expected_parent: i64,
    },
}

impl std::fmt::Display for ChainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The reference server's wording; clients show it in logs.
            ChainError::WrongParent { head, parent } => {
                write!(f, "Invalid parent event number. Received e{parent} but expected e{head}")
            }
            ChainError::Broken { index, seq_num, parent_seq_num, expected_parent } => write!(
                f,
                "Invalid batch: event {index} (e{seq_num}, parent e{parent_seq_num}) must have parent e{expected_parent} and seqNum e{}",
                expected_parent + 1
            ),
        }
    }
}

/// Checks that `batch` continues a log whose last event is `head`:
/// `batch[0].parentSeqNum == head` and every event is `parent + 1` of the one before.
pub fn check_chain(head: i64, batch: &[Event]) -> Result<(), ChainError> {
    let mut expected_parent = head;
    for (index, e) in batch.iter().enumerate() {
        if e.parent_seq_num != expected_parent {
            return Err(if index == 0 {
                ChainError::WrongParent {
                    head,
                    parent: e.parent_seq_num,
                }
            } else {
                ChainError::Broken {
                    index,
                    seq_num: e.seq_num,
                    parent_seq_num: e.parent_seq_num,
                    expected_parent,
                }
            });
        }
        if e.seq_num != e.parent_seq_num.wrapping_add(1) {
            return Err(ChainError::Broken {
                index,
                seq_num: e.seq_num,
                parent_seq_num: e.parent_seq_num,
                expected_parent,
            });
        }
        expected_parent = e.seq_num;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ev;

    #[test]
    fn chain_rules() {
        assert_eq!(check_chain(0, &[]), Ok(()));
        assert_eq!(
            check_chain(0, &[ev(1, "1"), ev(2, "2"), ev(3, "3")]),
            Ok(())
        );
        assert_eq!(
            check_chain(3, &[ev(1, "1")]),
            Err(ChainError::WrongParent { head: 3, parent: 0 })
        );
        assert_eq!(
            check_chain(0, &[ev(1, "1"), ev(3, "3")]),
            Err(ChainError::Broken {
                index: 1,
                seq_num: 3,
                parent_seq_num: 2,
                expected_parent: 1
            })
        );
        let mut skip = ev(2, "2");
        skip.seq_num = 5;
        assert!(matches!(
            check_chain(1, &[skip]),
            Err(ChainError::Broken { index: 0, .. })
        ));
        let mut dup = ev(2, "2");
        dup.parent_seq_num = 1;
        assert!(matches!(
            check_chain(0, &[ev(1, "1"), dup.clone(), dup]),
            Err(ChainError::Broken { index: 2, .. })
        ));
        assert_eq!(
            ChainError::WrongParent { head: 3, parent: 0 }.to_string(),
            "Invalid parent event number. Received e0 but expected e3"
        );
    }
}
