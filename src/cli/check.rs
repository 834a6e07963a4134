//! `check [ID…]`: every store's log holds exactly `1..=head`, each event's
//! parent is the one before it, and the store row agrees (head, backendId).

use std::process::ExitCode;

use super::progress::Progress;
use super::transfer::LogReader;
use super::Failed;
use crate::model::StoredEvent;
use crate::storage::{Storage, StorageError, StoreSummary};

/// At most this many problems are listed per store (a broken store can have
/// millions); the count says how many there were.
const LISTED: usize = 10;

/// What is wrong with one store's log, found in one pass.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Findings {
    pub problems: Vec<String>,
    pub more: usize,
    pub events: i64,
}

impl Findings {
    fn add(&mut self, problem: String) {
        if self.problems.len() < LISTED {
            self.problems.push(problem);
        } else {
            self.more += 1;
        }
    }
}

/// Checks `events` (ascending by seq_num, as storage reads them, including
/// any stored past the head) against the store row `head` / `backend_id`.
pub(super) fn inspect(
    head: i64,
    backend_id: &str,
    events: impl Iterator<Item = Result<StoredEvent, StorageError>>,
) -> Result<Findings, StorageError> {
    let mut f = Findings::default();
    if backend_id.trim().is_empty() {
        f.add("the store has no backendId".into());
    }
    if head < 0 {
        f.add(format!("the head is negative ({head})"));
    }
    let mut previous = 0;
    for e in events {
        let e = e?.event;
        f.events += 1;
        let seq = e.seq_num;
        // A gap is one finding; a parent that does not point at the event
        // before it (the previous one, or seq - 1 after a gap) is another.
        let expected_parent = if seq > previous + 1 {
            f.add(format!(
                "events e{}..e{} are missing",
                previous + 1,
                seq - 1
            ));
            seq - 1
        } else {
            if seq <= previous {
                f.add(format!("e{seq} comes after e{previous}"));
            }
            previous
        };
        if e.parent_seq_num != expected_parent {
            f.add(format!(
                "e{seq} has parent e{} but follows e{previous}",
                e.parent_seq_num
            ));
        }
        if seq > head {
            f.add(format!("e{seq} is past the head e{head}"));
        }
        previous = seq;
    }
    if previous < head {
        f.add(format!(
            "the head is e{head} but the log ends at e{previous}"
        ));
    }
    Ok(f)
}

pub(super) fn run(storage: &dyn Storage, ids: &[String], json: bool) -> Result<ExitCode, Failed> {
    let stores: Vec<Result<StoreSummary, String>> = if ids.is_empty() {
        storage.list_stores()?.into_iter().map(Ok).collect()
    } else {
        ids.iter()
            .map(|id| Ok(storage.store_summary(id)?.ok_or_else(|| id.clone())))
            .collect::<Result<_, StorageError>>()?
    };
    let mut bad = 0;
    for s in &stores {
        let (id, findings) = match s {
            Err(missing) => (
                missing.clone(),
                Findings {
                    problems: vec!["no such store".into()],
                    ..Findings::default()
                },
            ),
            Ok(s) => {
                let progress = Progress::new(s.head.max(0) as u64, &s.store_id);
                // Everything stored, past the head too.
                let events =
                    LogReader::new(storage, &s.store_id, i64::MAX).inspect(|_| progress.inc(1));
                let f = inspect(s.head, &s.backend_id, events)?;
                progress.finish();
                (s.store_id.clone(), f)
            }
        };
        let ok = findings.problems.is_empty();
        if !ok {
            bad += 1;
        }
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "storeId": id,
                    "ok": ok,
                    "events": findings.events,
                    "problems": findings.problems,
                    "moreProblems": findings.more,
                })
            );
        } else if ok {
            println!("ok       {id:?}: {} events", findings.events);
        } else {
            println!("PROBLEM  {id:?}:");
            for p in &findings.problems {
                println!("           {p}");
            }
            if findings.more > 0 {
                println!("           … and {} more", findings.more);
            }
        }
    }
    if !json {
        println!("{} stores checked, {bad} with problems", stores.len());
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;
    use std::time::UNIX_EPOCH;

    fn ev(seq: i64, parent: i64) -> Result<StoredEvent, StorageError> {
        Ok(StoredEvent {
            event: Event {
                name: "n".into(),
                args: None,
                seq_num: seq,
                parent_seq_num: parent,
                client_id: "c".into(),
                session_id: "s".into(),
            },
            created_at: UNIX_EPOCH,
        })
    }

    fn problems(head: i64, events: Vec<Result<StoredEvent, StorageError>>) -> Vec<String> {
        inspect(head, "b", events.into_iter()).unwrap().problems
    }

    #[test]
    fn a_sound_log_has_no_problems() {
        assert!(problems(3, vec![ev(1, 0), ev(2, 1), ev(3, 2)]).is_empty());
        assert!(problems(0, vec![]).is_empty());
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        assert_eq!(
            problems(4, vec![ev(1, 0), ev(2, 1), ev(4, 3)]),
            ["events e3..e3 are missing"]
        );
        assert_eq!(
            problems(2, vec![ev(1, 0), ev(2, 0)]),
            ["e2 has parent e0 but follows e1"]
        );
        assert_eq!(
            problems(4, vec![ev(1, 0), ev(4, 1)]),
            [
                "events e2..e3 are missing",
                "e4 has parent e1 but follows e1"
            ]
        );
        assert_eq!(
            problems(3, vec![ev(1, 0), ev(2, 1)]),
            ["the head is e3 but the log ends at e2"]
        );
        assert_eq!(
            problems(1, vec![ev(1, 0), ev(2, 1)]),
            ["e2 is past the head e1"]
        );
        assert_eq!(
            inspect(0, "", std::iter::empty()).unwrap().problems,
            ["the store has no backendId"]
        );
    }

    #[test]
    fn a_long_list_is_cut_and_counted() {
        let events = (1..=30).map(|i| ev(i * 2, i * 2 - 2)).collect();
        let f = inspect(60, "b", Vec::into_iter(events)).unwrap();
        assert_eq!(f.problems.len(), LISTED);
        assert!(f.more > 0);
        assert_eq!(f.events, 30);
    }

    #[test]
    fn a_read_failure_is_an_error_not_a_finding() {
        let events = vec![ev(1, 0), Err(StorageError("gone".into()))];
        assert!(inspect(1, "b", events.into_iter()).is_err());
    }
}
