//! The evidence side of the job store (`node.db`): every receipt kept
//! signed with its assignment (agreeing or dissenting), the job's escrow
//! and what of it is paid, and the providers' records. The rows of
//! [`JobStore`] that payment and reputation read and write.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, Fuel, JobId, NodeId, Receipt, Signed, TaskId, decode_capped, encode};
use sharegrid_sched::{Record, Reputation};

use super::store::{JobStore, StoreError, corrupt, parse};
use crate::payment::Unpaid;
use sharegrid_ledger::{MAX_EVIDENCE, Paid};

/// A receipt as kept: evidence for payment or slashing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeptReceipt {
    /// The provider (node id, hex).
    pub provider: String,
    /// The result it claimed (hex).
    pub result: String,
    /// `pending`, `agreed` or `dissent`.
    pub verdict: String,
    /// The signed receipt, CBOR.
    pub signed: Vec<u8>,
}

/// A job's escrow as recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EscrowRecord {
    /// The escrow's id on the ledger.
    pub escrow: ContentId,
    /// What it locked.
    pub amount: Amount,
    /// Whether the job is settled (its escrow closed by the last settlement).
    pub settled: bool,
}

impl JobStore {
    /// Keeps a receipt (before any verdict), with the signed assignment it
    /// answers (together they prove the work, for payment).
    pub fn receipt(
        &self,
        job: &JobId,
        receipt: &Receipt,
        signed: &Signed,
        assignment: &Signed,
    ) -> Result<(), StoreError> {
        let row = format!("receipt for task {} of job {job}", receipt.task);
        let bytes = encode(signed).map_err(|e| corrupt(&row, e))?;
        let assignment = encode(assignment).map_err(|e| corrupt(&row, e))?;
        let result = ContentId::from_bytes(*receipt.result.as_bytes());
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO receipts (job, task, provider, result, fuel, charge, signed, assignment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    job.to_string(),
                    receipt.task.to_string(),
                    receipt.provider.to_string(),
                    result.to_string(),
                    receipt.fuel.0 as i64,
                    receipt.charge.to_string(),
                    bytes,
                    assignment
                ],
            )
            .map(|_| ())
        })
    }

    /// Records the escrow that pays for a job.
    pub fn set_escrow(&self, job: &JobId, escrow: &ContentId, amount: Amount) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET escrow = ?2, escrow_amount = ?3 WHERE id = ?1",
                params![job.to_string(), escrow.to_string(), amount.to_string()],
            )
            .map(|_| ())
        })
    }

    /// The escrow paying for a job, if it has one.
    pub fn escrow(&self, job: &JobId) -> Result<Option<EscrowRecord>, StoreError> {
        let row: Option<(Option<String>, Option<String>, bool)> = self.with(|c| {
            c.query_row(
                "SELECT escrow, escrow_amount, settled FROM jobs WHERE id = ?1",
                [job.to_string()],
                |r| <_>::try_from(r),
            )
            .optional()
        })?;
        let name = format!("job {job}");
        match row {
            Some((Some(e), Some(a), settled)) => Ok(Some(EscrowRecord {
                escrow: parse(&name, "escrow", &e)?,
                amount: parse(&name, "escrow_amount", &a)?,
                settled,
            })),
            Some((Some(_), None, _)) | Some((None, Some(_), _)) => Err(corrupt(name, "escrow without its amount")),
            _ => Ok(None),
        }
    }

    /// Marks a job settled.
    pub fn set_settled(&self, job: &JobId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET settled = 1, settle_error = NULL WHERE id = ?1",
                [job.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Records why a job's settlement was refused (shown with the job; it
    /// is tried again at the next start).
    pub fn set_settle_error(&self, job: &JobId, why: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET settle_error = ?2 WHERE id = ?1",
                params![job.to_string(), why],
            )
            .map(|_| ())
        })
    }

    /// Why the job's settlement was last refused, if it was.
    pub fn settle_error(&self, job: &JobId) -> Result<Option<String>, StoreError> {
        let v: Option<Option<String>> = self.with(|c| {
            c.query_row("SELECT settle_error FROM jobs WHERE id = ?1", [job.to_string()], |r| {
                r.get(0)
            })
            .optional()
        })?;
        Ok(v.flatten())
    }

    /// Agreeing receipts of accepted tasks not yet paid, with their assignments.
    pub fn unpaid(&self, job: &JobId) -> Result<Vec<Unpaid>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT task, provider, assignment, signed FROM receipts
                 WHERE job = ?1 AND verdict = 'agreed' AND paid = 0 ORDER BY task, provider",
            )?;
            st.query_map([job.to_string()], |r| <_>::try_from(r))?.collect()
        })?;
        rows.into_iter()
            .map(|(t, p, a, r)| {
                let row = format!("receipt of {p} for task {t} of job {job}");
                let signed = |bytes: &[u8]| decode_capped::<Signed>(bytes, 1 << 20).map_err(|e| corrupt(&row, e));
                Ok(Unpaid {
                    task: parse(&row, "task", &t)?,
                    provider: parse(&row, "provider", &p)?,
                    assignment: signed(&a)?,
                    receipt: signed(&r)?,
                })
            })
            .collect()
    }

    /// Tasks of `job` whose replicas disagreed and that were not reported
    /// yet, each with its evidence for a dispute: one agreeing pair and the
    /// dissenting ones (at most [`MAX_EVIDENCE`] in all). Runs that timed out
    /// are no evidence and are left out.
    pub fn disputable(&self, job: &JobId) -> Result<Vec<(TaskId, Vec<Paid>)>, StoreError> {
        // (task, provider, verdict, assignment, receipt)
        type Row = (String, String, String, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT r.task, r.provider, r.verdict, r.assignment, r.signed FROM receipts r
                 WHERE r.job = ?1 AND r.verdict IN ('agreed', 'dissent')
                   AND r.task IN (SELECT task FROM receipts WHERE job = ?1 AND verdict = 'dissent')
                   AND NOT EXISTS (SELECT 1 FROM reports p WHERE p.job = ?1 AND p.task = r.task)
                 ORDER BY r.task, r.verdict, r.provider",
            )?;
            st.query_map([job.to_string()], |r| <_>::try_from(r))?.collect()
        })?;
        let mut out: Vec<(TaskId, Vec<Paid>, bool)> = Vec::new();
        for (t, p, verdict, a, r) in rows {
            let row = format!("receipt of {p} for task {t} of job {job}");
            let signed = |bytes: &[u8]| decode_capped::<Signed>(bytes, 1 << 20).map_err(|e| corrupt(&row, e));
            let task: TaskId = parse(&row, "task", &t)?;
            let receipt = signed(&r)?;
            let timed_out = decode_capped::<Receipt>(&receipt.body, 1 << 20)
                .is_ok_and(|x| matches!(x.outcome, sharegrid_core::Outcome::Timeout));
            if timed_out {
                continue;
            }
            let pair = Paid {
                assignment: signed(&a)?,
                receipt,
            };
            if out.last().is_none_or(|(last, _, _)| *last != task) {
                out.push((task, Vec::new(), false));
            }
            if let Some((_, pairs, has_agreed)) = out.last_mut() {
                // One agreeing pair is enough to show the disagreement.
                let agreed = verdict == "agreed";
                if (agreed && *has_agreed) || pairs.len() >= MAX_EVIDENCE {
                    continue;
                }
                *has_agreed |= agreed;
                pairs.push(pair);
            }
        }
        Ok(out
            .into_iter()
            .filter(|(_, pairs, has_agreed)| *has_agreed && pairs.len() >= 2)
            .map(|(t, pairs, _)| (t, pairs))
            .collect())
    }

    /// Records that task `task`'s disagreement was reported (or needs no
    /// report): it is not reported again.
    pub fn mark_reported(&self, job: &JobId, task: &TaskId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO reports (job, task) VALUES (?1, ?2)",
                params![job.to_string(), task.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Marks receipts paid (their settlement is in a block).
    pub fn mark_paid(&self, job: &JobId, paid: &[(TaskId, NodeId)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (t, p) in paid {
                tx.execute(
                    "UPDATE receipts SET paid = 1 WHERE job = ?1 AND task = ?2 AND provider = ?3",
                    params![job.to_string(), t.to_string(), p.to_string()],
                )?;
            }
            tx.commit()
        })
    }

    /// Marks a task accepted with its result (whose blob is stored), the
    /// agreeing and dissenting receipts, and the records of the providers
    /// the verdict touched.
    pub fn accept(
        &self,
        job: &JobId,
        task: &TaskId,
        result: &ContentId,
        fuel: Fuel,
        dissenting: &[NodeId],
        records: &[(NodeId, Record)],
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "UPDATE tasks SET state = 'done', result = ?3, fuel = ?4 WHERE job = ?1 AND id = ?2",
                params![job.to_string(), task.to_string(), result.to_string(), fuel.0 as i64],
            )?;
            tx.execute(
                "UPDATE receipts SET verdict = 'agreed' WHERE task = ?1 AND result = ?2 AND fuel = ?3",
                params![task.to_string(), result.to_string(), fuel.0 as i64],
            )?;
            for p in dissenting {
                tx.execute(
                    "UPDATE receipts SET verdict = 'dissent' WHERE task = ?1 AND provider = ?2",
                    params![task.to_string(), p.to_string()],
                )?;
            }
            save_records(&tx, records.iter().map(|(p, r)| (p, r)))?;
            tx.commit()
        })
    }

    /// Saves every provider record (at a job's end: failures counted there
    /// reach the store even for providers no verdict touched).
    pub fn save_reputation(&self, reputation: &Reputation) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            save_records(&tx, reputation.iter())?;
            tx.commit()
        })
    }

    /// Receipts kept for a task.
    pub fn receipts(&self, task: &TaskId) -> Result<Vec<KeptReceipt>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT provider, result, verdict, signed FROM receipts WHERE task = ?1")?;
            let rows = st.query_map([task.to_string()], |r| {
                Ok(KeptReceipt {
                    provider: r.get(0)?,
                    result: r.get(1)?,
                    verdict: r.get(2)?,
                    signed: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// What the node knows of providers.
    pub fn reputation(&self) -> Result<Reputation, StoreError> {
        let rows: Vec<(String, i64, i64, i64)> = self.with(|c| {
            let mut st = c.prepare("SELECT provider, agreed, disagreed, failed FROM reputation")?;
            st.query_map([], |r| <_>::try_from(r))?.collect()
        })?;
        let mut rep = Reputation::default();
        for (p, agreed, disagreed, failed) in rows {
            let id: NodeId = parse(&format!("reputation of {p}"), "provider", &p)?;
            *rep.entry(id) = Record {
                agreed: agreed as u64,
                disagreed: disagreed as u64,
                failed: failed as u64,
                ..Record::default()
            };
        }
        Ok(rep)
    }
}

fn save_records<'a>(
    tx: &rusqlite::Transaction<'_>,
    records: impl Iterator<Item = (&'a NodeId, &'a Record)>,
) -> rusqlite::Result<()> {
    let mut st = tx.prepare(
        "INSERT INTO reputation (provider, agreed, disagreed, failed) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(provider) DO UPDATE SET agreed = ?2, disagreed = ?3, failed = ?4",
    )?;
    for (p, r) in records {
        st.execute(params![
            p.to_string(),
            r.agreed as i64,
            r.disagreed as i64,
            r.failed as i64
        ])?;
    }
    Ok(())
}
