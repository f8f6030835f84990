//! A provider's proofs of work for escrowed jobs (the requestor's signed
//! assignment and its own signed receipt), kept in `node.db` before the
//! receipt leaves, so that it can claim its pay should the requestor not
//! settle. A proof is forgotten once paid or once its escrow has closed.
//! A stored proof that no longer decodes is an error naming its row, never
//! silently skipped.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use sharegrid_core::{ContentId, Signed, encode};

use super::plan::KeptProof;
use crate::job::StoreError;
use crate::provider::Proof;

/// The store of proofs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProofStore {
    conn: Arc<Mutex<Connection>>,
}

fn corrupt(row: &str, what: String) -> StoreError {
    StoreError::Corrupt(format!("proof of work {row}"), what)
}

impl ProofStore {
    /// The proofs kept in the job store's database (`node.db`).
    pub fn of(store: &crate::job::JobStore) -> Self {
        ProofStore { conn: store.shared() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }

    /// Keeps the proof of a run (once per escrow and task).
    pub fn keep(&self, p: &Proof) -> Result<(), StoreError> {
        let row = format!("{}/{}", p.escrow.short(), p.task);
        let a = encode(&p.assignment).map_err(|e| corrupt(&row, e.to_string()))?;
        let r = encode(&p.receipt).map_err(|e| corrupt(&row, e.to_string()))?;
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO earnings (escrow, task, assignment, receipt) VALUES (?1, ?2, ?3, ?4)",
                params![p.escrow.to_string(), p.task.to_string(), a, r],
            )
            .map(|_| ())
        })
    }

    /// Every proof kept.
    pub fn all(&self) -> Result<Vec<KeptProof>, StoreError> {
        type Row = (String, String, Vec<u8>, Vec<u8>, bool);
        let rows: Vec<Row> = self.with(|c| {
            let mut st =
                c.prepare("SELECT escrow, task, assignment, receipt, seen FROM earnings ORDER BY escrow, task")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(e, t, a, r, seen)| {
                let row = format!("{e}/{t}");
                let signed = |bytes: &[u8]| -> Result<Signed, StoreError> {
                    sharegrid_core::decode_capped(bytes, 1 << 20).map_err(|err| corrupt(&row, err.to_string()))
                };
                Ok(KeptProof {
                    escrow: e
                        .parse()
                        .map_err(|err: sharegrid_core::HashParseError| corrupt(&row, err.to_string()))?,
                    task: t
                        .parse()
                        .map_err(|err: sharegrid_core::HashParseError| corrupt(&row, err.to_string()))?,
                    assignment: signed(&a)?,
                    receipt: signed(&r)?,
                    seen,
                })
            })
            .collect()
    }

    /// Notes that an escrow was seen open on the ledger (so that its
    /// disappearance later means it closed).
    pub fn seen(&self, escrow: &ContentId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE earnings SET seen = 1 WHERE escrow = ?1", [escrow.to_string()])
                .map(|_| ())
        })
    }

    /// Forgets a proof (paid, or its escrow closed).
    pub fn forget(&self, escrow: &ContentId, task: &sharegrid_core::TaskId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM earnings WHERE escrow = ?1 AND task = ?2",
                params![escrow.to_string(), task.to_string()],
            )
            .map(|_| ())
        })
    }
}
