//! The requestor's job store: `node.db` (SQLite) in the node home. Jobs,
//! their tasks, every receipt (the evidence: kept signed, including the
//! ones that disagreed) and what the node has learnt of providers.
//!
//! Written so that a restart resumes exactly: a task is marked accepted in
//! the same transaction that records its result's blob id, and only after
//! that blob is in the blob store. WAL mode with synchronous=NORMAL: a
//! killed process loses nothing it committed (a power cut may lose the last
//! transactions, which only means re-running those tasks); FULL cost 35% of
//! job throughput (bench/RESULTS.md).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sharegrid_core::{Amount, ContentId, Determinism, Fuel, Limits, NodeId, Receipt, Signed, TaskId};
use sharegrid_sched::{Record, Reputation};

/// A job as submitted: everything needed to run (or resume) it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSubmission {
    /// Name for listings.
    pub name: String,
    /// Module blob.
    pub module: ContentId,
    /// Stdin blob (every task).
    pub stdin: ContentId,
    /// Input blobs by path (every task).
    pub inputs: Vec<(String, ContentId)>,
    /// Each task's limits.
    pub limits: Limits,
    /// Mode.
    pub mode: Determinism,
    /// `r`.
    pub replication: u32,
    /// `q`.
    pub quorum: u32,
    /// Price ceiling per gigafuel.
    pub price_ceiling: Amount,
    /// Budget.
    pub budget: Amount,
    /// Seconds from submission to the deadline.
    pub deadline_secs: Option<u64>,
    /// Architecture constraint.
    pub arch: Option<sharegrid_core::Arch>,
    /// Memory a provider must give a task.
    pub min_memory: u64,
    /// Lowest provider speed.
    pub min_speed: f64,
    /// Credibility threshold for accepting a result alone.
    pub credibility: Option<f64>,
    /// Each task's arguments.
    pub tasks: Vec<Vec<String>>,
}

/// A job's identity: 16 hex digits, unique per node.
pub type JobId = String;

/// The state of a job or task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Not finished.
    Running,
    /// Done (a job: every task accepted or failed; a task: accepted).
    Done,
    /// Failed.
    Failed,
}

impl State {
    /// `running`, `done` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
    fn parse(s: &str) -> State {
        match s {
            "done" => State::Done,
            "failed" => State::Failed,
            _ => State::Running,
        }
    }
}

/// A job's row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobRow {
    /// Id.
    pub id: JobId,
    /// Name.
    pub name: String,
    /// State.
    pub state: State,
    /// Why it failed, if it did.
    pub reason: Option<String>,
    /// Submitted at, ms since the epoch.
    pub created_ms: u64,
    /// Ended at.
    pub finished_ms: Option<u64>,
    /// Tasks.
    pub total: usize,
    /// Accepted tasks.
    pub accepted: usize,
    /// Failed tasks.
    pub failed: usize,
}

/// A task's row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRow {
    /// Index in the job.
    pub index: usize,
    /// Id.
    pub id: TaskId,
    /// Arguments.
    pub args: Vec<String>,
    /// State.
    pub state: State,
    /// Accepted result (the blob of its encoding).
    pub result: Option<ContentId>,
    /// Agreed fuel.
    pub fuel: Option<Fuel>,
    /// Why it failed.
    pub reason: Option<String>,
}

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

/// A provider's proof of a task run for an escrowed job, kept to claim.
#[derive(Clone, Debug)]
pub struct Earning {
    /// The escrow that pays.
    pub escrow: ContentId,
    /// The task.
    pub task: TaskId,
    /// The requestor's signed assignment.
    pub assignment: Signed,
    /// This provider's signed receipt.
    pub receipt: Signed,
    /// Whether the escrow was seen open on this node's ledger.
    pub seen: bool,
}

/// An earnings row as stored: escrow, task, assignment, receipt, seen.
type EarningRow = (String, String, Vec<u8>, Vec<u8>, bool);

fn parse_hash<T: std::str::FromStr<Err = sharegrid_core::HashParseError>>(
    what: &str,
    s: &str,
) -> Result<T, StoreError> {
    s.parse()
        .map_err(|e: sharegrid_core::HashParseError| StoreError::Corrupt(what.into(), e.to_string()))
}

fn parse_signed(what: &str, bytes: &[u8]) -> Result<Signed, StoreError> {
    sharegrid_core::decode_capped(bytes, 1 << 20).map_err(|e| StoreError::Corrupt(what.into(), e.to_string()))
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite.
    #[error("job store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored job that does not decode (a newer or damaged database).
    #[error("job store: job {0} is unreadable: {1}")]
    Corrupt(String, String),
}

/// The job store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JobStore {
    conn: Arc<Mutex<Connection>>,
}

/// The id of task `index` of job `job`: distinct per job and index, so two
/// jobs (or two equal argument lists) never share a random stream by accident.
pub fn task_id(job: &str, index: usize) -> TaskId {
    let mut h = blake3::Hasher::new_derive_key("sharegrid job task id v1");
    h.update(job.as_bytes());
    h.update(&(index as u64).to_le_bytes());
    TaskId::from_bytes(*h.finalize().as_bytes())
}

impl JobStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA foreign_keys=ON;
             CREATE TABLE IF NOT EXISTS jobs (
                 id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL,
                 state TEXT NOT NULL, reason TEXT, created_ms INTEGER NOT NULL, finished_ms INTEGER,
                 escrow TEXT, escrow_amount TEXT, settled INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE IF NOT EXISTS tasks (
                 job TEXT NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL, id TEXT NOT NULL,
                 args TEXT NOT NULL, state TEXT NOT NULL, result TEXT, fuel INTEGER, reason TEXT,
                 PRIMARY KEY (job, idx));
             CREATE INDEX IF NOT EXISTS tasks_by_id ON tasks(id);
             CREATE TABLE IF NOT EXISTS receipts (
                 job TEXT NOT NULL, task TEXT NOT NULL, provider TEXT NOT NULL,
                 result TEXT NOT NULL, fuel INTEGER NOT NULL, charge TEXT NOT NULL,
                 signed BLOB NOT NULL, verdict TEXT NOT NULL DEFAULT 'pending',
                 assignment BLOB NOT NULL, paid INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (task, provider));
             CREATE TABLE IF NOT EXISTS earnings (
                 escrow TEXT NOT NULL, task TEXT NOT NULL, assignment BLOB NOT NULL,
                 receipt BLOB NOT NULL, seen INTEGER NOT NULL DEFAULT 0,
                 PRIMARY KEY (escrow, task));
             CREATE TABLE IF NOT EXISTS reputation (
                 provider TEXT PRIMARY KEY, agreed INTEGER NOT NULL, disagreed INTEGER NOT NULL,
                 failed INTEGER NOT NULL);",
        )?;
        // A node.db from before payment through the ledger gains the columns.
        for (table, column, decl) in [
            ("jobs", "escrow", "TEXT"),
            ("jobs", "escrow_amount", "TEXT"),
            ("jobs", "settled", "INTEGER NOT NULL DEFAULT 0"),
            ("receipts", "assignment", "BLOB NOT NULL DEFAULT x''"),
            ("receipts", "paid", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            let has: bool = conn.query_row(
                &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
                [column],
                |r| r.get(0),
            )?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
            }
        }
        Ok(JobStore {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }

    /// Records a new job and its tasks (one transaction).
    pub fn create(&self, id: &str, sub: &JobSubmission, now_ms: u64) -> Result<(), StoreError> {
        let spec = serde_json::to_string(sub).map_err(|e| StoreError::Corrupt(id.into(), e.to_string()))?;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO jobs (id, name, spec, state, created_ms) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![id, sub.name, spec, now_ms as i64],
            )?;
            {
                let mut st =
                    tx.prepare("INSERT INTO tasks (job, idx, id, args, state) VALUES (?1, ?2, ?3, ?4, 'running')")?;
                for (i, args) in sub.tasks.iter().enumerate() {
                    let a = serde_json::to_string(args).unwrap_or_default();
                    st.execute(params![id, i as i64, task_id(id, i).to_string(), a])?;
                }
            }
            tx.commit()
        })
    }

    /// The submission of job `id`.
    pub fn submission(&self, id: &str) -> Result<Option<JobSubmission>, StoreError> {
        let spec: Option<String> = self.with(|c| {
            c.query_row("SELECT spec FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                .optional()
        })?;
        spec.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(id.into(), e.to_string())))
            .transpose()
    }

    /// Jobs not finished, to resume.
    pub fn unfinished(&self) -> Result<Vec<(JobId, u64)>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, created_ms FROM jobs WHERE state = 'running' ORDER BY created_ms")?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
            rows.collect()
        })
    }

    /// Ended jobs whose escrow is not yet settled (the ledger was out of
    /// reach when they ended).
    pub fn unsettled(&self) -> Result<Vec<JobId>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT id FROM jobs WHERE state != 'running' AND escrow IS NOT NULL AND settled = 0 ORDER BY created_ms",
            )?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect()
        })
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        self.job_rows(None)
    }

    /// Job `id`'s row, matched by full id or a unique prefix.
    pub fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut rows = self.job_rows(Some(id))?;
        Ok(if rows.len() == 1 { rows.pop() } else { None })
    }

    /// Jobs whose id starts with `prefix` (all when `None`), newest first.
    fn job_rows(&self, prefix: Option<&str>) -> Result<Vec<JobRow>, StoreError> {
        self.with(|c| {
            let mut st = c.prepare(
                "SELECT j.id, j.name, j.state, j.reason, j.created_ms, j.finished_ms,
                        COUNT(t.idx), SUM(t.state = 'done'), SUM(t.state = 'failed')
                 FROM jobs j LEFT JOIN tasks t ON t.job = j.id
                 WHERE ?1 IS NULL OR substr(j.id, 1, length(?1)) = ?1
                 GROUP BY j.id ORDER BY j.created_ms DESC",
            )?;
            let rows = st.query_map([prefix], |r| {
                Ok(JobRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    state: State::parse(&r.get::<_, String>(2)?),
                    reason: r.get(3)?,
                    created_ms: r.get::<_, i64>(4)? as u64,
                    finished_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    total: r.get::<_, i64>(6)? as usize,
                    accepted: r.get::<_, Option<i64>>(7)?.unwrap_or(0) as usize,
                    failed: r.get::<_, Option<i64>>(8)?.unwrap_or(0) as usize,
                })
            })?;
            rows.collect()
        })
    }

    /// Tasks of job `id`, by index.
    pub fn tasks(&self, id: &str) -> Result<Vec<TaskRow>, StoreError> {
        self.with(|c| {
            let mut st =
                c.prepare("SELECT idx, id, args, state, result, fuel, reason FROM tasks WHERE job = ?1 ORDER BY idx")?;
            let rows = st.query_map([id], |r| {
                Ok(TaskRow {
                    index: r.get::<_, i64>(0)? as usize,
                    id: r.get::<_, String>(1)?.parse().unwrap_or(TaskId::from_bytes([0; 32])),
                    args: serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or_default(),
                    state: State::parse(&r.get::<_, String>(3)?),
                    result: r.get::<_, Option<String>>(4)?.and_then(|s| s.parse().ok()),
                    fuel: r.get::<_, Option<i64>>(5)?.map(|f| Fuel(f as u64)),
                    reason: r.get(6)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Keeps a receipt (before any verdict), with the signed assignment it
    /// answers (together they prove the work, for payment).
    pub fn receipt(
        &self,
        job: &str,
        receipt: &Receipt,
        signed: &Signed,
        assignment: &Signed,
    ) -> Result<(), StoreError> {
        let bytes = sharegrid_core::encode(signed).unwrap_or_default();
        let assignment = sharegrid_core::encode(assignment).unwrap_or_default();
        let result = ContentId::from_bytes(*receipt.result.as_bytes());
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO receipts (job, task, provider, result, fuel, charge, signed, assignment)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    job,
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
    pub fn set_escrow(&self, job: &str, escrow: &ContentId, amount: Amount) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET escrow = ?2, escrow_amount = ?3 WHERE id = ?1",
                params![job, escrow.to_string(), amount.to_string()],
            )
            .map(|_| ())
        })
    }

    /// The escrow paying for a job, its amount, and whether the job is
    /// settled (its escrow closed by the last settlement).
    pub fn escrow(&self, job: &str) -> Result<Option<(ContentId, Amount, bool)>, StoreError> {
        let row: Option<(Option<String>, Option<String>, bool)> = self.with(|c| {
            c.query_row(
                "SELECT escrow, escrow_amount, settled FROM jobs WHERE id = ?1",
                [job],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
        })?;
        let corrupt = |e: String| StoreError::Corrupt(job.into(), e);
        match row {
            Some((Some(e), Some(a), settled)) => Ok(Some((
                e.parse()
                    .map_err(|e: sharegrid_core::HashParseError| corrupt(e.to_string()))?,
                a.parse().map_err(corrupt)?,
                settled,
            ))),
            _ => Ok(None),
        }
    }

    /// Marks a job settled.
    pub fn set_settled(&self, job: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE jobs SET settled = 1 WHERE id = ?1", [job])
                .map(|_| ())
        })
    }

    /// Agreeing receipts of accepted tasks not yet paid, with their
    /// assignments: (task, provider, signed assignment, signed receipt).
    pub fn unpaid(&self, job: &str) -> Result<Vec<(TaskId, NodeId, Signed, Signed)>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT task, provider, assignment, signed FROM receipts
                 WHERE job = ?1 AND verdict = 'agreed' AND paid = 0 ORDER BY task, provider",
            )?;
            st.query_map([job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(t, p, a, r)| {
                Ok((
                    parse_hash(job, &t)?,
                    parse_hash(job, &p)?,
                    parse_signed(job, &a)?,
                    parse_signed(job, &r)?,
                ))
            })
            .collect()
    }

    /// Marks receipts paid (their settlement is in a block).
    pub fn mark_paid(&self, job: &str, paid: &[(TaskId, NodeId)]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.transaction()?;
            for (t, p) in paid {
                tx.execute(
                    "UPDATE receipts SET paid = 1 WHERE job = ?1 AND task = ?2 AND provider = ?3",
                    params![job, t.to_string(), p.to_string()],
                )?;
            }
            tx.commit()
        })
    }

    /// Provider: keeps the proof of a task run for an escrowed job, to claim
    /// the pay if the requestor does not settle.
    pub fn earned(
        &self,
        escrow: &ContentId,
        task: &TaskId,
        assignment: &Signed,
        receipt: &Signed,
    ) -> Result<(), StoreError> {
        let a = sharegrid_core::encode(assignment).unwrap_or_default();
        let r = sharegrid_core::encode(receipt).unwrap_or_default();
        self.with(|c| {
            c.execute(
                "INSERT OR IGNORE INTO earnings (escrow, task, assignment, receipt) VALUES (?1, ?2, ?3, ?4)",
                params![escrow.to_string(), task.to_string(), a, r],
            )
            .map(|_| ())
        })
    }

    /// Provider: the proofs kept.
    pub fn earnings(&self) -> Result<Vec<Earning>, StoreError> {
        let rows: Vec<EarningRow> = self.with(|c| {
            let mut st = c.prepare("SELECT escrow, task, assignment, receipt, seen FROM earnings")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
                .collect()
        })?;
        rows.into_iter()
            .map(|(e, t, a, r, seen)| {
                Ok(Earning {
                    escrow: parse_hash("earnings", &e)?,
                    task: parse_hash("earnings", &t)?,
                    assignment: parse_signed("earnings", &a)?,
                    receipt: parse_signed("earnings", &r)?,
                    seen,
                })
            })
            .collect()
    }

    /// Provider: notes that a proof's escrow has been seen open on the
    /// ledger (so that its disappearance later means it closed).
    pub fn earning_seen(&self, escrow: &ContentId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute("UPDATE earnings SET seen = 1 WHERE escrow = ?1", [escrow.to_string()])
                .map(|_| ())
        })
    }

    /// Provider: forgets a proof (paid, or its escrow closed).
    pub fn forget_earning(&self, escrow: &ContentId, task: &TaskId) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "DELETE FROM earnings WHERE escrow = ?1 AND task = ?2",
                params![escrow.to_string(), task.to_string()],
            )
            .map(|_| ())
        })
    }

    /// Marks a task accepted with its result (whose blob is stored), the
    /// agreeing and dissenting receipts, and the records of the providers
    /// the verdict touched.
    pub fn accept(
        &self,
        job: &str,
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
                params![job, task.to_string(), result.to_string(), fuel.0 as i64],
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

    /// Marks a task failed.
    pub fn fail_task(&self, job: &str, task: &TaskId, reason: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET state = 'failed', reason = ?3 WHERE job = ?1 AND id = ?2",
                params![job, task.to_string(), reason],
            )
            .map(|_| ())
        })
    }

    /// Ends a job.
    pub fn finish(&self, job: &str, state: State, reason: Option<&str>, now_ms: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, reason = ?3, finished_ms = ?4 WHERE id = ?1",
                params![job, state.as_str(), reason, now_ms as i64],
            )
            .map(|_| ())
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
        self.with(|c| {
            let mut st = c.prepare("SELECT provider, agreed, disagreed, failed FROM reputation")?;
            let mut rep = Reputation::default();
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Record {
                        agreed: r.get::<_, i64>(1)? as u64,
                        disagreed: r.get::<_, i64>(2)? as u64,
                        failed: r.get::<_, i64>(3)? as u64,
                    },
                ))
            })?;
            for row in rows {
                let (p, rec) = row?;
                if let Ok(id) = p.parse::<NodeId>() {
                    *rep.entry(id) = rec;
                }
            }
            Ok(rep)
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_from_before_ledger_payment_gains_its_columns() {
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
             INSERT INTO jobs (id, name, spec, state, created_ms) VALUES ('j', 'old', '{}', 'done', 1);",
        )
        .unwrap();
        drop(old);
        let store = JobStore::open(&path).unwrap();
        assert_eq!(store.escrow("j").unwrap(), None);
        assert!(store.unsettled().unwrap().is_empty());
        let escrow = ContentId::of(b"e");
        store.set_escrow("j", &escrow, Amount(5)).unwrap();
        assert_eq!(store.escrow("j").unwrap(), Some((escrow, Amount(5), false)));
        assert_eq!(store.unsettled().unwrap(), vec!["j".to_string()]);
        // Opening again changes nothing.
        drop(store);
        assert_eq!(
            JobStore::open(&path).unwrap().escrow("j").unwrap(),
            Some((escrow, Amount(5), false))
        );
    }
}
