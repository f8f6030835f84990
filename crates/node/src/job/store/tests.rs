//! The job store's tests: real SQLite files, old schemas, corrupt rows.

use super::*;
use crate::job::EscrowRecord;
use rusqlite::Connection;
use sharegrid_core::Amount;

#[test]
fn a_store_from_an_earlier_version_gains_its_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let old = Connection::open(&path).unwrap();
    old.execute_batch(
        "CREATE TABLE jobs (
             id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL,
             state TEXT NOT NULL, reason TEXT, created_ms INTEGER NOT NULL, finished_ms INTEGER);
         CREATE TABLE receipts (
             job TEXT NOT NULL, task TEXT NOT NULL, provider TEXT NOT NULL,
             result TEXT NOT NULL, fuel INTEGER NOT NULL, charge TEXT NOT NULL,
             signed BLOB NOT NULL, verdict TEXT NOT NULL DEFAULT 'pending',
             PRIMARY KEY (task, provider));
         INSERT INTO jobs (id, name, spec, state, created_ms) VALUES ('00000000000000aa', 'old', '{}', 'done', 1);",
    )
    .unwrap();
    drop(old);
    let job: JobId = "00000000000000aa".parse().unwrap();
    let store = JobStore::open(&path).unwrap();
    assert_eq!(store.escrow(&job).unwrap(), None);
    assert!(store.unsettled().unwrap().is_empty());
    let escrow = ContentId::of(b"e");
    store.set_escrow(&job, &escrow, Amount(5)).unwrap();
    let recorded = EscrowRecord {
        escrow,
        amount: Amount(5),
        settled: false,
    };
    assert_eq!(store.escrow(&job).unwrap(), Some(recorded));
    assert_eq!(store.unsettled().unwrap(), vec![job]);
    // Opening again changes nothing.
    drop(store);
    assert_eq!(JobStore::open(&path).unwrap().escrow(&job).unwrap(), Some(recorded));
}

#[test]
fn a_corrupt_row_is_an_error_naming_it_never_a_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let store = JobStore::open(&path).unwrap();
    let job = JobId::from_bytes([7; 8]);
    let mut sub = JobSubmission::sample(2, 1);
    sub.tasks = vec![vec!["a".into()], vec!["b".into()]];
    store.create(&job, &sub, 1).unwrap();
    assert_eq!(store.tasks(&job).unwrap()[1].args, vec!["b".to_string()]);
    assert_eq!(store.tasks(&job).unwrap()[1].id, job.task(1));
    let c = Connection::open(&path).unwrap();
    c.execute_batch("UPDATE tasks SET args = 'not json' WHERE idx = 1")
        .unwrap();
    let err = store.tasks(&job).unwrap_err().to_string();
    assert!(
        err.contains("task 1 of job 0707070707070707") && err.contains("args"),
        "{err}"
    );
    c.execute_batch("UPDATE tasks SET args = '[]'; UPDATE jobs SET state = 'exploded'")
        .unwrap();
    let err = store.jobs().unwrap_err().to_string();
    assert!(err.contains("state \"exploded\""), "{err}");
    c.execute_batch("UPDATE jobs SET state = 'done', escrow = 'zz', escrow_amount = '1'")
        .unwrap();
    assert!(store.escrow(&job).unwrap_err().to_string().contains("escrow"));
}
