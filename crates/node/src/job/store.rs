//! The requestor's job store: `node.db` (SQLite) in the node home. Jobs,
//! their tasks, every receipt (the evidence: kept signed, including the
//! ones that disagreed), what the node has learnt of providers, and (in the
//! same database, through [`crate::payment::ProofStore`]) a provider's
//! proofs of work. A row that does not decode is an error that names it,
//! never a silent default.
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
use sharegrid_core::{Amount, ContentId, Fuel, JobId, NodeId, Receipt, Signed, TaskId, decode_capped, encode};
use sharegrid_sched::{Record, Reputation};

use super::submission::JobSubmission;
use crate::payment::Unpaid;

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

    fn parse(s: &str) -> Option<State> {
        match s {
            "running" => Some(State::Running),
            "done" => Some(State::Done),
            "failed" => Some(State::Failed),
            _ => None,
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

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite.
    #[error("job store: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row that does not decode (a newer or damaged database).
    #[error("job store: {0} is unreadable: {1}")]
    Corrupt(String, String),
}

fn corrupt(row: impl std::fmt::Display, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(row.to_string(), what.to_string())
}

fn parse<T: std::str::FromStr>(row: &str, field: &str, s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e: T::Err| corrupt(row, format!("{field}: {e}")))
}

/// The job store. Cheap to clone.
#[derive(Clone, Debug)]
pub struct JobStore {
    conn: Arc<Mutex<Connection>>,
}

impl JobStore {
    /// Opens (creating) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA foreign_keys=ON;
             PRAGMA busy_timeout=10000;
             CREATE TABLE IF NOT EXISTS jobs (
                 id TEXT PRIMARY KEY, name TEXT NOT NULL, spec TEXT NOT NULL,
                 state TEXT NOT NULL, reason TEXT, created_ms INTEGER NOT NULL, finished_ms INTEGER,
                 escrow TEXT, escrow_amount TEXT, settled INTEGER NOT NULL DEFAULT 0, settle_error TEXT);
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
        // A node.db from an earlier version gains the columns.
        for (table, column, decl) in [
            ("jobs", "escrow", "TEXT"),
            ("jobs", "escrow_amount", "TEXT"),
            ("jobs", "settled", "INTEGER NOT NULL DEFAULT 0"),
            ("jobs", "settle_error", "TEXT"),
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

    /// The connection, for the other stores of `node.db`.
    pub(crate) fn shared(&self) -> Arc<Mutex<Connection>> {
        self.conn.clone()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        Ok(f(&mut c)?)
    }

    /// Records a new job and its tasks (one transaction).
    pub fn create(&self, id: &JobId, sub: &JobSubmission, now_ms: u64) -> Result<(), StoreError> {
        let row = format!("job {id}");
        let spec = serde_json::to_string(sub).map_err(|e| corrupt(&row, e))?;
        let args: Vec<String> = sub
            .tasks
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()
            .map_err(|e| corrupt(&row, e))?;
        self.with(|c| {
            let tx = c.transaction()?;
            tx.execute(
                "INSERT INTO jobs (id, name, spec, state, created_ms) VALUES (?1, ?2, ?3, 'running', ?4)",
                params![id.to_string(), sub.name, spec, now_ms as i64],
            )?;
            {
                let mut st =
                    tx.prepare("INSERT INTO tasks (job, idx, id, args, state) VALUES (?1, ?2, ?3, ?4, 'running')")?;
                for (i, a) in args.iter().enumerate() {
                    st.execute(params![id.to_string(), i as i64, id.task(i).to_string(), a])?;
                }
            }
            tx.commit()
        })
    }

    /// The submission of job `id`.
    pub fn submission(&self, id: &JobId) -> Result<Option<JobSubmission>, StoreError> {
        let spec: Option<String> = self.with(|c| {
            c.query_row("SELECT spec FROM jobs WHERE id = ?1", [id.to_string()], |r| r.get(0))
                .optional()
        })?;
        spec.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(format!("job {id}"), e)))
            .transpose()
    }

    /// Jobs not finished, to resume, with when they were submitted.
    pub fn unfinished(&self) -> Result<Vec<(JobId, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = self.with(|c| {
            let mut st = c.prepare("SELECT id, created_ms FROM jobs WHERE state = 'running' ORDER BY created_ms")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
        })?;
        rows.into_iter()
            .map(|(id, at)| Ok((parse("a job", "id", &id)?, at as u64)))
            .collect()
    }

    /// Ended jobs whose escrow is not yet settled.
    pub fn unsettled(&self) -> Result<Vec<JobId>, StoreError> {
        let rows: Vec<String> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT id FROM jobs WHERE state != 'running' AND escrow IS NOT NULL AND settled = 0 ORDER BY created_ms",
            )?;
            st.query_map([], |r| r.get(0))?.collect()
        })?;
        rows.iter().map(|id| parse("a job", "id", id)).collect()
    }

    /// Every job, newest first.
    pub fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        self.job_rows(None)
    }

    /// The job whose id is `id` or starts with it, if exactly one does.
    pub fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        let mut rows = self.job_rows(Some(id))?;
        Ok(if rows.len() == 1 { rows.pop() } else { None })
    }

    /// Jobs whose id starts with `prefix` (all when `None`), newest first.
    fn job_rows(&self, prefix: Option<&str>) -> Result<Vec<JobRow>, StoreError> {
        type Row = (
            String,
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT j.id, j.name, j.state, j.reason, j.created_ms, j.finished_ms,
                        COUNT(t.idx), SUM(t.state = 'done'), SUM(t.state = 'failed')
                 FROM jobs j LEFT JOIN tasks t ON t.job = j.id
                 WHERE ?1 IS NULL OR substr(j.id, 1, length(?1)) = ?1
                 GROUP BY j.id ORDER BY j.created_ms DESC",
            )?;
            st.query_map([prefix], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(id, name, state, reason, created, finished, total, done, failed)| {
                let row = format!("job {id}");
                Ok(JobRow {
                    id: parse(&row, "id", &id)?,
                    name,
                    state: State::parse(&state).ok_or_else(|| corrupt(&row, format!("state {state:?}")))?,
                    reason,
                    created_ms: created as u64,
                    finished_ms: finished.map(|v| v as u64),
                    total: total as usize,
                    accepted: done.unwrap_or(0) as usize,
                    failed: failed.unwrap_or(0) as usize,
                })
            })
            .collect()
    }

    /// Tasks of job `id`, by index.
    pub fn tasks(&self, id: &JobId) -> Result<Vec<TaskRow>, StoreError> {
        type Row = (i64, String, String, String, Option<String>, Option<i64>, Option<String>);
        let rows: Vec<Row> = self.with(|c| {
            let mut st =
                c.prepare("SELECT idx, id, args, state, result, fuel, reason FROM tasks WHERE job = ?1 ORDER BY idx")?;
            st.query_map([id.to_string()], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect()
        })?;
        rows.into_iter()
            .map(|(index, task, args, state, result, fuel, reason)| {
                let row = format!("task {index} of job {id}");
                Ok(TaskRow {
                    index: index as usize,
                    id: parse(&row, "id", &task)?,
                    args: serde_json::from_str(&args).map_err(|e| corrupt(&row, format!("args: {e}")))?,
                    state: State::parse(&state).ok_or_else(|| corrupt(&row, format!("state {state:?}")))?,
                    result: result.map(|r| parse(&row, "result", &r)).transpose()?,
                    fuel: fuel.map(|f| Fuel(f as u64)),
                    reason,
                })
            })
            .collect()
    }

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
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
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
            st.query_map([job.to_string()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
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

    /// Marks a task failed.
    pub fn fail_task(&self, job: &JobId, task: &TaskId, reason: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE tasks SET state = 'failed', reason = ?3 WHERE job = ?1 AND id = ?2",
                params![job.to_string(), task.to_string(), reason],
            )
            .map(|_| ())
        })
    }

    /// Ends a job.
    pub fn finish(&self, job: &JobId, state: State, reason: Option<&str>, now_ms: u64) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET state = ?2, reason = ?3, finished_ms = ?4 WHERE id = ?1",
                params![job.to_string(), state.as_str(), reason, now_ms as i64],
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
        let rows: Vec<(String, i64, i64, i64)> = self.with(|c| {
            let mut st = c.prepare("SELECT provider, agreed, disagreed, failed FROM reputation")?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })?;
        let mut rep = Reputation::default();
        for (p, agreed, disagreed, failed) in rows {
            let id: NodeId = parse(&format!("reputation of {p}"), "provider", &p)?;
            *rep.entry(id) = Record {
                agreed: agreed as u64,
                disagreed: disagreed as u64,
                failed: failed as u64,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let sub = JobSubmission {
            name: "j".into(),
            module: ContentId::of(b"m"),
            stdin: ContentId::of(b""),
            inputs: vec![],
            limits: sharegrid_core::Limits::default(),
            mode: sharegrid_core::Determinism::Native,
            replication: 1,
            quorum: 1,
            price_ceiling: Amount(1),
            budget: Amount(1),
            deadline_secs: None,
            arch: None,
            min_memory: 0,
            min_speed: 0.0,
            credibility: None,
            tasks: vec![vec!["a".into()], vec!["b".into()]],
        };
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
}
