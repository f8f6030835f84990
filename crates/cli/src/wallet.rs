//! The ledger from the command line: `wallet`, `transfer TO AMOUNT` and
//! `ledger blocks|tx|account|verify`. Reading commands open the home's
//! `ledger.db` directly (read-only use; a running node keeps writing it),
//! so they work with the node stopped; `transfer` asks the running node,
//! which signs with the node's key and hands the transaction to the
//! validator.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use sharegrid_core::{Amount, ContentId, NodeId, decode_capped};
use sharegrid_ledger::{Chain, MAX_TX_BYTES, Tx};
use sharegrid_node::{ApiClient, ApiRequest, FoundTx, LedgerStore, NodeHome, StakeAction, Transferred};

#[derive(Args, Debug)]
pub(crate) struct WalletArgs {
    /// Transactions of history shown.
    #[arg(long, default_value_t = 20)]
    history: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct TransferArgs {
    /// The receiving account (64 hex digits).
    to: NodeId,
    /// Tokens, in the smallest unit.
    amount: Amount,
    /// Return once the validator has it, without waiting for the block.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum StakeCommand {
    /// Bonded and unbonding stake, held claims and open disputes.
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bond tokens as stake (through the running node): jobs may require
    /// it, and a provider without it is never trusted alone.
    Bond {
        /// Tokens, in the smallest unit.
        amount: Amount,
    },
    /// Start unbonding stake: it can still be slashed until the network's
    /// unbonding period ends, then be withdrawn.
    Unbond {
        /// Tokens, in the smallest unit.
        amount: Amount,
    },
    /// Take back stake whose unbonding period has passed.
    Withdraw,
}

#[derive(Subcommand, Debug)]
pub(crate) enum LedgerCommand {
    /// The latest blocks.
    Blocks {
        /// How many.
        #[arg(long, default_value_t = 20)]
        last: u64,
    },
    /// One transaction, by id.
    Tx {
        /// The transaction id (64 hex digits).
        id: ContentId,
    },
    /// One account: balance, nonce, recent transactions.
    Account {
        /// The account (64 hex digits).
        addr: NodeId,
    },
    /// Replay every block from genesis, checking every signature, hash link
    /// and state root.
    Verify,
    /// Wait until the running node's ledger reaches a block height.
    Wait {
        /// The height.
        height: u64,
        /// Give up after this long (e.g. 30s, 2m).
        #[arg(long, default_value = "60s", value_parser = crate::units::parse_duration)]
        timeout: std::time::Duration,
    },
}

fn open(home: &Path) -> anyhow::Result<(NodeHome, sharegrid_ledger::Genesis, LedgerStore)> {
    let h = NodeHome::new(home);
    let genesis = h
        .genesis()
        .context("no ledger here: run `sharegrid init` (or pass --home)")?;
    let store = LedgerStore::open(&h.ledger_path(), &genesis)?;
    Ok((h, genesis, store))
}

pub(crate) fn tx_line(f: &FoundTx) -> String {
    match decode_capped::<Tx>(&f.signed.body, MAX_TX_BYTES) {
        Ok(t) => format!(
            "block {:>6}  {}  from {}  {}",
            f.height,
            f.signed.id().short(),
            t.signer.short(),
            t.op.describe()
        ),
        Err(e) => format!("block {:>6}  {}  undecodable: {e}", f.height, f.signed.id().short()),
    }
}

pub(crate) fn wallet(home: &Path, a: WalletArgs) -> anyhow::Result<ExitCode> {
    let (h, genesis, store) = open(home)?;
    let me = h.identity()?.id();
    let chain = store.chain(&genesis)?;
    let account = chain.state().accounts.get(&me).copied().unwrap_or_default();
    let history = store.history(&me, a.history)?;
    if a.json {
        let v = serde_json::json!({
            "address": me.to_string(),
            "balance": account.balance.to_string(),
            "stake": chain.state().stake(&me).to_string(),
            "nonce": account.nonce,
            "height": chain.height(),
            "history": history.iter().map(|f| serde_json::json!({
                "height": f.height, "tx": f.signed.id().to_string(), "time_ms": f.time_ms,
            })).collect::<Vec<_>>(),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("address   {me}");
    println!("balance   {}", account.balance);
    let stake = chain.state().stakes.get(&me).copied().unwrap_or_default();
    if stake.slashable() > 0 {
        println!("stake     {} bonded, {} unbonding", stake.bonded, stake.unbonding);
    }
    println!("as of     block {} (this node's copy of the ledger)", chain.height());
    if history.is_empty() {
        println!("history   none");
    } else {
        println!("history   (newest first)");
        for f in &history {
            println!("  {}", tx_line(f));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn transfer(home: &Path, a: TransferArgs) -> anyhow::Result<ExitCode> {
    let mut api = ApiClient::connect(&NodeHome::new(home))?;
    let t: Transferred = api.call(&ApiRequest::Transfer {
        to: a.to,
        amount: a.amount,
        wait: !a.no_wait,
    })?;
    match t.height {
        Some(h) => println!("tx {} in block {h}", t.tx),
        None => println!("tx {} accepted by the validator", t.tx),
    }
    Ok(ExitCode::SUCCESS)
}

/// `sharegrid faucet`: test tokens from the network validator's faucet.
pub(crate) fn faucet(home: &Path) -> anyhow::Result<ExitCode> {
    let h = NodeHome::new(home);
    let mut api = ApiClient::connect(&h)?;
    let t: Transferred = api.call(&ApiRequest::Faucet)?;
    let (_, genesis, store) = open(home)?;
    let me = h.identity()?.id();
    let balance = store.chain(&genesis)?.state().balance(&me);
    println!(
        "test tokens received: tx {} in block {}; balance {balance}",
        t.tx,
        t.height.unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `sharegrid stake`: show reads the home's ledger; the rest ask the
/// running node, which signs and waits for the block.
pub(crate) fn stake(home: &Path, cmd: StakeCommand) -> anyhow::Result<ExitCode> {
    let action = match cmd {
        StakeCommand::Show { json } => return show_stake(home, json),
        StakeCommand::Bond { amount } => StakeAction::Bond(amount),
        StakeCommand::Unbond { amount } => StakeAction::Unbond(amount),
        StakeCommand::Withdraw => StakeAction::Withdraw,
    };
    let mut api = ApiClient::connect(&NodeHome::new(home))?;
    let t: Transferred = api.call(&ApiRequest::Stake { action })?;
    println!("tx {} in block {}", t.tx, t.height.unwrap_or_default());
    show_stake(home, false)
}

fn show_stake(home: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let (h, genesis, store) = open(home)?;
    let me = h.identity()?.id();
    let chain = store.chain(&genesis)?;
    let s = chain.state();
    let st = s.stakes.get(&me).copied().unwrap_or_default();
    let held: Vec<_> = s.claims.iter().filter(|((_, _, p), _)| *p == me).collect();
    let disputes: Vec<_> = s
        .disputes
        .iter()
        .filter(|(_, d)| d.reporter == me || d.accused.contains_key(&me))
        .collect();
    if json {
        let v = serde_json::json!({
            "bonded": st.bonded.to_string(),
            "unbonding": st.unbonding.to_string(),
            "release_height": st.release_height,
            "height": chain.height(),
            "held_claims": held.len(),
            "disputes": disputes.len(),
        });
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("bonded     {}", st.bonded);
    if st.unbonding.0 > 0 {
        let when = if chain.height() >= st.release_height {
            "withdrawable now".to_string()
        } else {
            format!("withdrawable from block {} (now {})", st.release_height, chain.height())
        };
        println!("unbonding  {} ({when})", st.unbonding);
    }
    for ((escrow, task, _), c) in held {
        println!(
            "held claim {} for task {} of escrow {}, collectable from block {}",
            c.charge,
            task.short(),
            escrow.short(),
            c.payable_from
        );
    }
    for ((_, task), d) in disputes {
        let role = if d.reporter == me { "reported" } else { "accused" };
        println!(
            "dispute    over task {} ({role}), judged by block {}",
            task.short(),
            d.deadline
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn ledger(home: &Path, cmd: LedgerCommand) -> anyhow::Result<ExitCode> {
    if let LedgerCommand::Wait { height, timeout } = cmd {
        let mut api = sharegrid_node::ApiClient::connect(&NodeHome::new(home))?;
        let at: u64 = api.call(&sharegrid_node::ApiRequest::WaitHeight {
            height,
            timeout_ms: timeout.as_millis() as u64,
        })?;
        println!("at block {at}");
        return Ok(ExitCode::SUCCESS);
    }
    let (_, genesis, store) = open(home)?;
    match cmd {
        LedgerCommand::Blocks { last } => {
            let top = store.height()?;
            let from = top.saturating_sub(last.saturating_sub(1)).max(1);
            println!(
                "{:>7}  {:<12}  {:>4}  producer      time (UTC)",
                "height", "hash", "txs"
            );
            for b in store.blocks(from, last as usize, usize::MAX)? {
                let h = b.open_header()?;
                let time = jiff::Timestamp::from_millisecond(h.time_ms as i64)
                    .map_or_else(|_| "?".into(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string());
                println!(
                    "{:>7}  {:<12}  {:>4}  {}  {time}",
                    h.height,
                    b.hash().short(),
                    b.txs.len(),
                    h.producer.short()
                );
            }
            if top == 0 {
                println!("(no blocks yet: genesis {} only)", genesis.hash().short());
            }
        }
        LedgerCommand::Tx { id } => {
            let f = store
                .tx(&id)?
                .with_context(|| format!("transaction {id} is in no block of this ledger"))?;
            let t: Tx = decode_capped(&f.signed.body, MAX_TX_BYTES)?;
            println!("tx        {id}");
            println!("block     {} (position {})", f.height, f.index);
            println!("signer    {}", t.signer);
            println!("nonce     {}", t.nonce);
            println!("fee       {}", t.fee);
            println!("what      {}", t.op.describe());
        }
        LedgerCommand::Account { addr } => {
            let chain = store.chain(&genesis)?;
            let a = chain.state().accounts.get(&addr).copied().unwrap_or_default();
            println!("account   {addr}");
            println!("balance   {}", a.balance);
            println!("nonce     {}", a.nonce);
            for f in store.history(&addr, 20)? {
                println!("  {}", tx_line(&f));
            }
        }
        LedgerCommand::Verify => return verify(&genesis, &store),
        LedgerCommand::Wait { .. } => unreachable!("answered above"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Replays the stored chain from genesis; the first discrepancy, or "ok".
fn verify(genesis: &sharegrid_ledger::Genesis, store: &LedgerStore) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut chain = Chain::new(genesis).map_err(anyhow::Error::msg)?;
    let mut txs = 0usize;
    loop {
        let batch = store.blocks(chain.height() + 1, 256, 64 << 20)?;
        if batch.is_empty() {
            break;
        }
        for b in &batch {
            if let Err(e) = chain.apply(b) {
                println!("FAILED at block {}: {e}", chain.height() + 1);
                return Ok(ExitCode::FAILURE);
            }
            txs += b.txs.len();
        }
    }
    // The stored state must be the replayed one.
    let stored = store.chain(genesis)?;
    if stored.height() != chain.height() || stored.head() != chain.head() {
        println!(
            "FAILED: the stored head is block {} ({}), the replay ends at {} ({})",
            stored.height(),
            stored.head().short(),
            chain.height(),
            chain.head().short()
        );
        return Ok(ExitCode::FAILURE);
    }
    let root = chain.state().root();
    if stored.state().root() != root {
        println!(
            "FAILED: the stored state's root {} differs from the replay's {root}",
            stored.state().root()
        );
        return Ok(ExitCode::FAILURE);
    }
    let secs = started.elapsed().as_secs_f64();
    println!("ok: {} blocks, state root {root}", chain.height());
    eprintln!(
        "({txs} transactions; {secs:.2} s, {:.0} blocks/s, {:.0} tx/s)",
        chain.height() as f64 / secs.max(1e-9),
        txs as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}
