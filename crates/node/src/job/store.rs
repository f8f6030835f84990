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
use sharegrid_core::{ContentId, Fuel, JobId, TaskId};

use super::submission::JobSubmission;

/// The state of a job or task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
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

pub(super) fn corrupt(row: impl std::fmt::Display, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(row.to_string(), what.to_string())
}

pub(super) fn parse<T: std::str::FromStr>(row: &str, field: &str, s: &str) -> Result<T, StoreError>
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
                 escrow TEXT, escrow_amount TEXT, settled INTEGER NOT NULL DEFAULT 0, settle_error TEXT,
                 cancelled INTEGER NOT NULL DEFAULT 0);
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
             CREATE TABLE IF NOT EXISTS reports (
                 job TEXT NOT NULL, task TEXT NOT NULL, PRIMARY KEY (job, task));
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
            ("jobs", "cancelled", "INTEGER NOT NULL DEFAULT 0"),
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

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
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
            st.query_map([], |r| <_>::try_from(r))?.collect()
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

    /// The job whose id is `id` or starts with it, if exactly one does;
    /// `last`: the newest.
    pub fn job(&self, id: &str) -> Result<Option<JobRow>, StoreError> {
        if id == "last" {
            return Ok(self.job_rows(None)?.into_iter().next());
        }
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
            st.query_map([prefix], |r| <_>::try_from(r))?.collect()
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
            st.query_map([id.to_string()], |r| <_>::try_from(r))?.collect()
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

    /// Records that the requestor cancelled running job `job` (kept across
    /// a restart, which then ends it); whether it was running.
    pub fn cancel(&self, job: &JobId) -> Result<bool, StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE jobs SET cancelled = 1 WHERE id = ?1 AND state = 'running'",
                params![job.to_string()],
            )
            .map(|n| n == 1)
        })
    }

    /// Whether job `job` was cancelled.
    pub fn is_cancelled(&self, job: &JobId) -> Result<bool, StoreError> {
        self.with(|c| {
            c.query_row(
                "SELECT COALESCE(MAX(cancelled), 0) FROM jobs WHERE id = ?1",
                params![job.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n != 0)
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
}

#[cfg(test)]
mod tests;
