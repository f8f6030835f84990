//! `ledger.db` (SQLite) in the node home: the blocks, an index of their
//! transactions by id and by account, the state after the last block, and
//! the validator's pool of acknowledged transactions.
//!
//! Crash safety: a block, its index rows, the state after it and the
//! removal of its transactions from the pool are written in one SQLite
//! transaction, so a crash at any point leaves either the old head or the
//! new one, never half. WAL with synchronous=FULL: a transaction is
//! acknowledged only once it is on disk, and survives a power cut too.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use sharegrid_core::{ContentId, NodeId, Signed, decode_capped, encode};
use sharegrid_ledger::{Block, Chain, Genesis, Header, MAX_TX_BYTES, State, Tx};

/// Largest stored block read back.
const MAX_BLOCK_BYTES: usize = 64 << 20;
/// Largest stored state read back.
const MAX_STATE_BYTES: usize = 1 << 30;

/// Why the ledger store failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerStoreError {
    /// SQLite.
    #[error("ledger.db: {0}")]
    Sql(#[from] rusqlite::Error),
    /// Stored bytes that do not decode (a damaged file).
    #[error("ledger.db is damaged: {0}")]
    Damaged(String),
    /// A write shared with other callers failed (their error, as text).
    #[error("ledger.db: {0}")]
    Shared(String),
    /// The database belongs to another network.
    #[error(
        "ledger.db belongs to the network with genesis {stored}, not this genesis ({ours}); move it away to start over"
    )]
    OtherGenesis {
        /// In the file.
        stored: ContentId,
        /// Ours.
        ours: ContentId,
    },
}

/// A transaction found in the chain.
#[derive(Clone, Debug)]
pub struct FoundTx {
    /// The block's height.
    pub height: u64,
    /// Its position in the block.
    pub index: u32,
    /// The block's time.
    pub time_ms: u64,
    /// The signed transaction.
    pub signed: Signed,
}

/// An account after a block (in [`LedgerStore::balances`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct BalancePoint {
    /// The block.
    pub height: u64,
    /// Its time, ms since the epoch.
    pub time_ms: u64,
    /// The balance after it.
    pub balance: sharegrid_core::Amount,
    /// The stake bonded after it.
    pub bonded: sharegrid_core::Amount,
}

/// The ledger's database.
#[derive(Debug)]
pub struct LedgerStore {
    conn: Connection,
}

impl LedgerStore {
    /// Opens (or creates) `path` for `genesis`, refusing a file made for
    /// another genesis.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<LedgerStore, LedgerStoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS blocks (
                 height INTEGER PRIMARY KEY, hash BLOB NOT NULL, time_ms INTEGER NOT NULL,
                 txs INTEGER NOT NULL, body BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS txs (
                 id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS account_txs (
                 account BLOB NOT NULL, height INTEGER NOT NULL, idx INTEGER NOT NULL,
                 PRIMARY KEY (account, height, idx));
             CREATE TABLE IF NOT EXISTS balances (
                 account BLOB NOT NULL, height INTEGER NOT NULL, time_ms INTEGER NOT NULL,
                 balance TEXT NOT NULL, bonded TEXT NOT NULL, PRIMARY KEY (account, height));
             CREATE TABLE IF NOT EXISTS pool (
                 seq INTEGER PRIMARY KEY AUTOINCREMENT, id BLOB UNIQUE NOT NULL, body BLOB NOT NULL);
             CREATE INDEX IF NOT EXISTS blocks_by_hash ON blocks (hash);",
        )?;
        let ours = genesis.hash();
        let stored: Option<Vec<u8>> = conn
            .query_row("SELECT value FROM meta WHERE key = 'genesis'", [], |r| r.get(0))
            .optional()?;
        match stored {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('genesis', ?1)",
                    params![ours.as_bytes().to_vec()],
                )?;
            }
            Some(bytes) => {
                let stored = content_id(&bytes)?;
                if stored != ours {
                    return Err(LedgerStoreError::OtherGenesis { stored, ours });
                }
            }
        }
        Ok(LedgerStore { conn })
    }

    /// The chain at the stored head.
    pub fn chain(&self, genesis: &Genesis) -> Result<Chain, LedgerStoreError> {
        let head: Option<(i64, Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT height, hash, time_ms FROM blocks ORDER BY height DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((height, hash, time_ms)) = head else {
            return Chain::new(genesis).map_err(LedgerStoreError::Damaged);
        };
        let state: Vec<u8> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'state'", [], |r| r.get(0))
            .optional()?
            .ok_or_else(|| LedgerStoreError::Damaged("blocks without a stored state".into()))?;
        let state: State =
            decode_capped(&state, MAX_STATE_BYTES).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
        if state.chain != genesis.hash() {
            return Err(LedgerStoreError::Damaged(
                "the stored state is of another network than the genesis".into(),
            ));
        }
        Ok(Chain::restore(state, int(height)?, content_id(&hash)?, int(time_ms)?))
    }

    /// Writes `block` (already checked) and the state after it, and drops
    /// its transactions from the pool, in one transaction.
    pub fn commit(&mut self, block: &Block, header: &Header, state: &State) -> Result<(), LedgerStoreError> {
        let body = encode(block).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
        let validators: Vec<NodeId> = state.validators.iter().copied().collect();
        let touched: std::collections::BTreeSet<NodeId> =
            block.txs.iter().flat_map(|tx| accounts_of(tx, &validators)).collect();
        let after: Vec<(NodeId, String, String)> = touched
            .into_iter()
            .map(|a| {
                let balance = state.accounts.get(&a).map(|x| x.balance).unwrap_or_default();
                let bonded = state.stakes.get(&a).map(|k| k.bonded).unwrap_or_default();
                (a, balance.to_string(), bonded.to_string())
            })
            .collect();
        let state = encode(state).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
        // IMMEDIATE: the pool's writer (another connection) writes too; taking
        // the write lock up front waits for it instead of failing.
        let t = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        t.execute(
            "INSERT INTO blocks (height, hash, time_ms, txs, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                sql(header.height)?,
                block.hash().as_bytes().to_vec(),
                sql(header.time_ms)?,
                block.txs.len() as i64,
                body
            ],
        )?;
        {
            let mut index = t.prepare_cached("INSERT OR IGNORE INTO txs (id, height, idx) VALUES (?1, ?2, ?3)")?;
            let mut by_account =
                t.prepare_cached("INSERT OR IGNORE INTO account_txs (account, height, idx) VALUES (?1, ?2, ?3)")?;
            let mut unpool = t.prepare_cached("DELETE FROM pool WHERE id = ?1")?;
            for (i, tx) in block.txs.iter().enumerate() {
                let id = tx.id().as_bytes().to_vec();
                index.execute(params![id, sql(header.height)?, i as i64])?;
                unpool.execute(params![id])?;
                for account in accounts_of(tx, &validators) {
                    by_account.execute(params![account.as_bytes().to_vec(), sql(header.height)?, i as i64])?;
                }
            }
        }
        {
            // Each touched account's balance after the block: its history
            // over time, for people (the dashboard's chart).
            let mut balances = t.prepare_cached(
                "INSERT OR REPLACE INTO balances (account, height, time_ms, balance, bonded) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for (a, balance, bonded) in &after {
                balances.execute(params![
                    a.as_bytes().to_vec(),
                    sql(header.height)?,
                    sql(header.time_ms)?,
                    balance,
                    bonded
                ])?;
            }
        }
        t.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('state', ?1)",
            params![state],
        )?;
        t.commit()?;
        Ok(())
    }

    /// `account`'s balance and bonded stake after each of the latest
    /// `limit` blocks that touched it, newest first (blocks stored before
    /// this record existed have none).
    pub fn balances(&self, account: &NodeId, limit: usize) -> Result<Vec<BalancePoint>, LedgerStoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT height, time_ms, balance, bonded FROM balances WHERE account = ?1 ORDER BY height DESC LIMIT ?2",
        )?;
        let rows: Vec<(i64, i64, String, String)> = q
            .query_map(params![account.as_bytes().to_vec(), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(h, t, b, k)| {
                let amount = |s: &str| {
                    s.parse::<sharegrid_core::Amount>()
                        .map_err(|e| LedgerStoreError::Damaged(format!("balance at {h}: {e}")))
                };
                Ok(BalancePoint {
                    height: int(h)?,
                    time_ms: int(t)?,
                    balance: amount(&b)?,
                    bonded: amount(&k)?,
                })
            })
            .collect()
    }

    /// Adds acknowledged transactions to the pool, in order, in one
    /// transaction: on disk (one fsync for all) before it returns.
    pub fn pool_add<'a>(&mut self, txs: impl IntoIterator<Item = &'a Signed>) -> Result<(), LedgerStoreError> {
        let t = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut add = t.prepare_cached("INSERT OR IGNORE INTO pool (id, body) VALUES (?1, ?2)")?;
            for tx in txs {
                let body = encode(tx).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
                add.execute(params![tx.id().as_bytes().to_vec(), body])?;
            }
        }
        t.commit()?;
        Ok(())
    }

    /// Drops transactions from the pool (those that can no longer apply),
    /// in one transaction.
    pub fn pool_remove(&mut self, ids: &[ContentId]) -> Result<(), LedgerStoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let t = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut unpool = t.prepare_cached("DELETE FROM pool WHERE id = ?1")?;
            for id in ids {
                unpool.execute(params![id.as_bytes().to_vec()])?;
            }
        }
        t.commit()?;
        Ok(())
    }

    /// The pool, oldest first.
    pub fn pool(&self) -> Result<Vec<Signed>, LedgerStoreError> {
        let mut q = self.conn.prepare("SELECT body FROM pool ORDER BY seq")?;
        let rows = q.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for body in rows {
            out.push(decode_capped(&body?, MAX_TX_BYTES + 1024).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?);
        }
        Ok(out)
    }

    /// Blocks from `from`, at most `max` and about `max_bytes` (at least one).
    pub fn blocks(&self, from: u64, max: usize, max_bytes: usize) -> Result<Vec<Block>, LedgerStoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT body FROM blocks WHERE height >= ?1 ORDER BY height LIMIT ?2")?;
        let rows = q.query_map(params![sql(from)?, max.min(i64::MAX as usize) as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for body in rows {
            let body = body?;
            bytes += body.len();
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(decode_capped(&body, MAX_BLOCK_BYTES).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?);
        }
        Ok(out)
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, LedgerStoreError> {
        Ok(self.blocks(height, 1, usize::MAX)?.into_iter().next())
    }

    /// The block with hash `hash`.
    pub fn block_by_hash(&self, hash: &ContentId) -> Result<Option<Block>, LedgerStoreError> {
        let body: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT body FROM blocks WHERE hash = ?1")?
            .query_row(params![hash.as_bytes().to_vec()], |r| r.get(0))
            .optional()?;
        body.map(|b| decode_capped(&b, MAX_BLOCK_BYTES).map_err(|e| LedgerStoreError::Damaged(e.to_string())))
            .transpose()
    }

    /// The newest block's finalization certificate (a network of several
    /// validators commits every block with one or under a descendant that
    /// has one, and the head always has its own).
    pub fn last_certificate(&self) -> Result<Option<Vec<u8>>, LedgerStoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT body FROM blocks ORDER BY height DESC LIMIT 64")?;
        let rows = q.query_map([], |r| r.get::<_, Vec<u8>>(0))?;
        for body in rows {
            let block: Block =
                decode_capped(&body?, MAX_BLOCK_BYTES).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
            if !block.certificate.is_empty() {
                return Ok(Some(block.certificate));
            }
        }
        Ok(None)
    }

    /// A transaction by id, if it is in a block.
    pub fn tx(&self, id: &ContentId) -> Result<Option<FoundTx>, LedgerStoreError> {
        let at: Option<(i64, u32)> = self
            .conn
            .query_row(
                "SELECT height, idx FROM txs WHERE id = ?1",
                params![id.as_bytes().to_vec()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((height, index)) = at else { return Ok(None) };
        Ok(self.txs_at(&[(int(height)?, index)])?.pop())
    }

    /// The transactions at (height, index) positions, in order, reading
    /// each block once for a run of positions in the same block.
    fn txs_at(&self, at: &[(u64, u32)]) -> Result<Vec<FoundTx>, LedgerStoreError> {
        let mut q = self
            .conn
            .prepare_cached("SELECT time_ms, body FROM blocks WHERE height = ?1")?;
        let mut out = Vec::with_capacity(at.len());
        let mut current: Option<(u64, u64, Block)> = None;
        for &(height, index) in at {
            if current.as_ref().is_none_or(|(h, _, _)| *h != height) {
                let row: Option<(i64, Vec<u8>)> = q
                    .query_row(params![sql(height)?], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((time_ms, body)) = row else { continue };
                let block =
                    decode_capped(&body, MAX_BLOCK_BYTES).map_err(|e| LedgerStoreError::Damaged(e.to_string()))?;
                current = Some((height, int(time_ms)?, block));
            }
            if let Some((_, time_ms, block)) = &current
                && let Some(signed) = block.txs.get(index as usize)
            {
                out.push(FoundTx {
                    height,
                    index,
                    time_ms: *time_ms,
                    signed: signed.clone(),
                });
            }
        }
        Ok(out)
    }

    /// Whether a transaction is in a block, and at which height.
    pub fn tx_height(&self, id: &ContentId) -> Result<Option<u64>, LedgerStoreError> {
        let h: Option<i64> = self
            .conn
            .query_row(
                "SELECT height FROM txs WHERE id = ?1",
                params![id.as_bytes().to_vec()],
                |r| r.get(0),
            )
            .optional()?;
        h.map(int).transpose()
    }

    /// The latest `limit` transactions touching `account`, newest first.
    pub fn history(&self, account: &NodeId, limit: usize) -> Result<Vec<FoundTx>, LedgerStoreError> {
        let mut q = self.conn.prepare_cached(
            "SELECT height, idx FROM account_txs WHERE account = ?1 ORDER BY height DESC, idx DESC LIMIT ?2",
        )?;
        let at: Vec<(i64, u32)> = q
            .query_map(params![account.as_bytes().to_vec(), limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let at: Vec<(u64, u32)> = at
            .into_iter()
            .map(|(h, i)| Ok((int(h)?, i)))
            .collect::<Result<_, LedgerStoreError>>()?;
        self.txs_at(&at)
    }

    /// Height of the last stored block.
    pub fn height(&self) -> Result<u64, LedgerStoreError> {
        let h: i64 = self
            .conn
            .query_row("SELECT COALESCE(MAX(height), 0) FROM blocks", [], |r| r.get(0))?;
        int(h)
    }
}

/// SQLite integers are signed; heights and times fit in them.
fn sql(v: u64) -> Result<i64, LedgerStoreError> {
    i64::try_from(v).map_err(|_| LedgerStoreError::Damaged(format!("{v} does not fit in SQLite")))
}

fn int(v: i64) -> Result<u64, LedgerStoreError> {
    u64::try_from(v).map_err(|_| LedgerStoreError::Damaged(format!("negative stored value {v}")))
}

fn content_id(bytes: &[u8]) -> Result<ContentId, LedgerStoreError> {
    let b: [u8; 32] = bytes
        .try_into()
        .map_err(|_| LedgerStoreError::Damaged("a stored hash is not 32 bytes".into()))?;
    Ok(ContentId::from_bytes(b))
}

/// The accounts a transaction touches, for `wallet` history: its signer
/// and, for a transfer, the receiver; for settlements and claims, the
/// providers paid; for a dispute, the providers it accuses. (Undecodable
/// transactions never reach a block.)
fn accounts_of(tx: &Signed, validators: &[NodeId]) -> Vec<NodeId> {
    let mut out = vec![tx.signer];
    if let Ok(t) = decode_capped::<Tx>(&tx.body, MAX_TX_BYTES) {
        match t.op {
            sharegrid_ledger::Op::Transfer { to, .. } => out.push(to),
            sharegrid_ledger::Op::Settle { paid, .. } => {
                out.extend(paid.iter().map(|p| p.receipt.signer));
            }
            sharegrid_ledger::Op::Dispute { evidence, .. } => {
                out.extend(evidence.iter().map(|p| p.receipt.signer));
            }
            sharegrid_ledger::Op::Equivocation { evidence } => {
                out.extend(sharegrid_ledger::consensus::offender(validators, &evidence));
            }
            sharegrid_ledger::Op::Claim { .. }
            | sharegrid_ledger::Op::OpenEscrow { .. }
            | sharegrid_ledger::Op::CloseExpired { .. }
            | sharegrid_ledger::Op::Collect { .. }
            | sharegrid_ledger::Op::Bond { .. }
            | sharegrid_ledger::Op::Unbond { .. }
            | sharegrid_ledger::Op::Withdraw
            | sharegrid_ledger::Op::Verdict { .. }
            | sharegrid_ledger::Op::Lapse { .. } => {}
        }
    }
    out.sort();
    out.dedup();
    out
}
