//! `sharegrid demo`: the embedded default. One process starts a whole
//! network on 127.0.0.1 — providers of different (emulated) speeds, one of
//! them lying, and a requestor — renders a Mandelbrot image as a job of
//! tiles with r = 2 through the real stack (libp2p, offers, the scheduler,
//! quorum verification, blobs, the job store, the ledger), assembles the
//! accepted tiles into one PNG and prints a report. Four validators (the
//! requestor and three validator-only nodes) order the ledger by BFT
//! consensus; the providers follow their finalized blocks and bond stake. The
//! job is paid through an escrow. Each task the liar got wrong is reported
//! to the ledger as a dispute; the validator re-runs it and the liar's stake
//! is slashed, the reporter rewarded. The report reads each provider's
//! earnings, the slashes and the treasury's fee from the ledger, shows the
//! ledger lines that prove them and checks the money to the unit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use sharegrid_core::{Amount, Determinism, JobId, Limits, NodeId, NodeKey, Receipt, Signed, TaskResult};
use sharegrid_ledger::{MAX_TX_BYTES, Op, Tx};
use sharegrid_node::testnet::{self, LedgerSpec, ProviderSpec, TestNode, Testnet};
use sharegrid_node::{JobStore, JobSubmission, Ledger, LedgerSettings, PaymentEvent, State};

use crate::guests;

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Where to write the image.
    #[arg(long, default_value = "mandelbrot.png", value_name = "FILE")]
    out: PathBuf,
    /// Image width and height in pixels.
    #[arg(long, default_value_t = 1600)]
    width: u32,
    /// Image height in pixels.
    #[arg(long, default_value_t = 1200)]
    height: u32,
    /// Tiles across and down.
    #[arg(long, default_value_t = 8)]
    cols: u32,
    /// Tiles down.
    #[arg(long, default_value_t = 6)]
    rows: u32,
    /// Serve the dashboard and API on the requestor node while the job runs,
    /// and leave the network running afterwards, until Ctrl-C.
    #[arg(long)]
    serve: bool,
    /// Where `--serve` listens (a taken port falls back to the next free
    /// ones).
    #[arg(long, default_value = "127.0.0.1:7410", value_name = "ADDR")]
    api: std::net::SocketAddr,
}

/// The providers: (name, emulated speed in Gfuel/s, slots, lies).
const PROVIDERS: &[(&str, f64, u32, bool)] = &[
    ("phone", 0.5, 1, false),
    ("laptop", 1.0, 2, false),
    ("desktop", 2.0, 2, false),
    ("server", 4.0, 4, false),
    ("liar", 4.0, 2, true),
];

/// The requestor's starting balance.
const FUNDS: u128 = 1_000_000_000_000;
/// Each provider's starting balance, and the stake it bonds.
const PROVIDER_FUNDS: u128 = 2_000_000;
const STAKE: u128 = 1_000_000;
/// Validators ordering the ledger by BFT consensus (the requestor and three
/// validator-only nodes): one may fail or lie and the ledger goes on.
const VALIDATORS: usize = 4;
/// The network fee, in basis points.
const FEE_BPS: u32 = 100;

pub(crate) fn main(_home: &Path, a: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        a.cols >= 1 && a.rows >= 1 && a.width >= a.cols && a.height >= a.rows && a.width <= 20000 && a.height <= 20000,
        "the grid must fit the image (1..=20000 pixels each way, at least a pixel per tile)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(a))
}

async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    let dir = tempfile::tempdir()?;
    println!(
        "sharegrid demo: a network of {} providers and a requestor on 127.0.0.1",
        PROVIDERS.len()
    );
    let mut builder = Testnet::builder(dir.path()).ledger(LedgerSpec {
        funds: FUNDS,
        fee_bps: FEE_BPS,
        treasury: Some(NodeKey::from_seed([200; 32]).id()),
        provider_funds: PROVIDER_FUNDS,
        provider_stake: STAKE,
        validators: VALIDATORS,
        settings: LedgerSettings {
            block_interval_ms: 50,
            idle_block_secs: 10,
            settle_batch: 16,
            ..LedgerSettings::default()
        },
    });
    for (i, &(name, speed, slots, lies)) in PROVIDERS.iter().enumerate() {
        let mut spec =
            ProviderSpec::new(name, speed, slots).price_floor(if lies { 1_000 } else { 1_000 * (2 + i as u128) });
        spec.memory_bytes = 4 << 30;
        spec.policy.offer_interval_secs = 2;
        if lies {
            spec = spec.faulty();
        }
        let lie = if lies { ", returns wrong results" } else { "" };
        println!("  provider {name:<8} {speed:>4} Gfuel/s × {slots} slot(s), {STAKE} staked{lie}");
        builder = builder.provider(spec);
    }
    let net = builder.start().await?;
    println!("  requestor sees {} offers\n", net.providers.len());
    let r = &net.requestor;
    let (engine, store, rblobs) = (&r.engine, &r.store, &r.node.blobs);
    let rledger = r.node.ledger.clone().context("the demo's requestor keeps the ledger")?;
    let payments = r.payments.as_ref().context("the demo pays through the ledger")?;
    if a.serve {
        serve(r, a.api).await?;
    }
    let module = rblobs.put(guests::MANDELBROT)?;
    let stdin = rblobs.put(b"")?;
    let mut tasks = Vec::new();
    for col in 0..a.cols {
        for row in 0..a.rows {
            tasks.push(
                [col, row, a.cols, a.rows, a.width, a.height, 1024]
                    .iter()
                    .map(u32::to_string)
                    .collect(),
            );
        }
    }
    let sub = JobSubmission {
        min_stake: Amount(0),
        launch: Default::default(),
        mounts: Vec::new(),
        name: "mandelbrot".into(),
        module,
        stdin,
        inputs: vec![],
        limits: Limits {
            fuel: sharegrid_core::Fuel(50_000_000_000),
            ..Limits::default()
        },
        mode: Determinism::Native,
        replication: 2,
        quorum: 2,
        price_ceiling: Amount(100_000),
        budget: Amount(100_000_000),
        deadline_secs: Some(600),
        wait_for_providers_secs: None,
        arch: None,
        min_memory: 64 << 20,
        min_speed: 0.0,
        credibility: None,
        tasks,
    };
    let n = sub.tasks.len();
    println!(
        "job: {n} tiles of a {}×{} Mandelbrot image, r = 2, q = 2",
        a.width, a.height
    );
    let started = Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let rkey = r.node.key.id();
    let before = rledger.account(&rkey);
    let stakes_before: HashMap<NodeId, u128> = rledger.with_state(|s| {
        net.providers
            .iter()
            .map(|p| (p.handle.id(), s.slashable(&p.handle.id())))
            .collect()
    });
    let mut paid = payments.subscribe();
    let id = engine.submit(sub).await?;
    let waiting = engine.wait(&id);
    tokio::pin!(waiting);
    let mut draw = tokio::time::interval(Duration::from_millis(100));
    let job = loop {
        tokio::select! {
            row = &mut waiting => break row?.context("the job vanished")?,
            _ = draw.tick(), if tty => {
                if let Some(row) = store.job(&id.to_string())? {
                    let line = crate::jobs::progress_line(&row, engine.live(&id).as_ref());
                    eprint!("\r  {line}   ");
                }
            }
        }
    };
    if tty {
        eprintln!();
    }
    let wall = started.elapsed();
    anyhow::ensure!(
        job.state == State::Done,
        "the job failed: {}",
        job.reason.unwrap_or_default()
    );
    // The last settlement goes through the payment task: wait for it.
    if !store.escrow(&id)?.is_some_and(|e| e.settled) {
        let settled = testnet::wait_for(&mut paid, "the job's settlement", |e| match e {
            PaymentEvent::Settled { job } if *job == id => Some(Ok(())),
            PaymentEvent::SettleFailed {
                job,
                why,
                retrying: false,
            } if *job == id => Some(Err(why.clone())),
            _ => None,
        })
        .await?;
        settled.map_err(|why| anyhow::anyhow!("the job's settlement was refused: {why}"))?;
    }
    // The requestor reported every task the replicas disagreed on when it
    // settled; the validator re-runs each. Wait for the verdicts.
    let mut blocks = r.node.handle.subscribe();
    while rledger.with_state(|s| !s.disputes.is_empty()) {
        testnet::wait_for(&mut blocks, "the verdicts", |e| {
            matches!(e, sharegrid_node::NodeEvent::Block { .. }).then_some(())
        })
        .await?;
    }

    // Assemble the accepted tiles.
    let rows = store.tasks(&id)?;
    let (w, h) = (a.width as usize, a.height as usize);
    let mut image = vec![0u8; w * h * 3];
    let mut fuel = 0u64;
    let mut per_provider: HashMap<String, (usize, usize)> = HashMap::new();
    // What the agreeing receipts charge, per provider: what the ledger must
    // have paid; and each payment's network fee.
    let mut owed: HashMap<NodeId, u128> = HashMap::new();
    let mut network_fee = 0u128;
    for t in &rows {
        let (Some(result), Some(f)) = (t.result, t.fuel) else {
            anyhow::bail!("tile {} {:?} was not accepted: {:?}", t.index, t.args, t.reason);
        };
        fuel += f.0;
        let bytes = rblobs.get(&result)?.context("an accepted tile's result is missing")?;
        let r = TaskResult::decode(&bytes)?;
        let file = r.files.first().context("a tile without an image")?;
        let (col, row): (usize, usize) = (t.args[0].parse()?, t.args[1].parse()?);
        let (x0, y0) = (w * col / a.cols as usize, h * row / a.rows as usize);
        blit(&mut image, w, &file.data, x0, y0)?;
        for k in store.receipts(&t.id)? {
            let e = per_provider.entry(k.provider).or_default();
            if k.verdict == "dissent" {
                e.1 += 1;
            } else if k.verdict == "agreed" {
                e.0 += 1;
                let signed: Signed = sharegrid_core::decode_capped(&k.signed, 1 << 20)?;
                let r: Receipt = signed.open(1 << 20)?;
                *owed.entry(r.provider).or_default() += r.charge.0;
                network_fee += rledger.with_state(|s| s.network_fee(r.charge))?.0;
            }
        }
    }
    write_png(&a.out, a.width, a.height, &image)?;

    println!("\nreport");
    println!("  tasks      {n} accepted of {n}, each by 2 agreeing providers");
    println!("  fuel       {} (accepted results)", sharegrid_core::Fuel(fuel));
    println!("  wall time  {:.2} s", wall.as_secs_f64());
    println!("  providers  (results agreed / rejected)");
    let mut caught = 0;
    for p in &net.providers {
        let (agreed, rejected) = per_provider
            .get(&p.handle.id().to_string())
            .copied()
            .unwrap_or_default();
        caught += rejected;
        println!("    {:<8} {agreed:>4} / {rejected}", p.name);
    }
    println!(
        "  verified   {} wrong results caught by quorum and rejected; none accepted",
        caught
    );
    let slashed = fault_report(&net.providers, &rledger, &rkey, &stakes_before)?;
    let due = Due {
        owed: &owed,
        network_fee,
        slashed,
    };
    payment_report(&net.providers, &rledger, store, &id, &rkey, before.balance, &due)?;
    consensus_report(&net, &rledger)?;
    println!("  image      {}", a.out.display());
    if a.serve {
        println!("\nthe network keeps running with the dashboard open; Ctrl-C stops it");
        tokio::signal::ctrl_c().await?;
    }
    net.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// Serves the HTTP API and dashboard on the requestor node at `addr` (or
/// the next free port) and prints the address to open.
async fn serve(r: &testnet::TestRequestor, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "--api {addr}: the demo serves only on a loopback address"
    );
    let (at, token) = r
        .serve_http(addr)
        .await
        .map_err(|e| anyhow::anyhow!("--api {addr}: {e}"))?;
    println!("  dashboard  http://{at}/#token={token}\n");
    Ok(())
}

/// What the ledger must show: each provider's pay, the network fee on it,
/// and the stake slashed.
struct Due<'a> {
    owed: &'a HashMap<NodeId, u128>,
    network_fee: u128,
    slashed: u128,
}

/// The faults: the ledger lines of the requestor's disputes and the
/// validator's verdicts, and each provider's stake before and after.
/// Returns the stake slashed in all. An honest provider is never slashed.
fn fault_report(
    providers: &[TestNode],
    ledger: &Arc<Ledger>,
    requestor: &NodeId,
    before: &HashMap<NodeId, u128>,
) -> anyhow::Result<u128> {
    // Oldest first: each dispute, then the verdict on its task.
    let mut disputes = Vec::new();
    let mut verdicts = HashMap::new();
    for f in ledger.history(requestor, 10_000)?.into_iter().rev() {
        match sharegrid_core::decode_capped::<Tx>(&f.signed.body, MAX_TX_BYTES).map(|t| t.op) {
            Ok(Op::Dispute { task, .. }) => disputes.push((task, f)),
            Ok(Op::Verdict { task, .. }) => {
                verdicts.insert(task, f);
            }
            _ => {}
        }
    }
    let judged = disputes.iter().filter(|(t, _)| verdicts.contains_key(t)).count();
    println!(
        "  disputes   {} reported by the requestor, {judged} judged: the validator re-ran each task",
        disputes.len()
    );
    anyhow::ensure!(judged == disputes.len(), "a dispute was left unjudged");
    if let Some((task, f)) = disputes.first() {
        println!("    {}", crate::wallet::tx_line(f));
        if let Some(v) = verdicts.get(task) {
            println!("    {}", crate::wallet::tx_line(v));
        }
        if disputes.len() > 1 {
            println!(
                "    … and {} more, each with its verdict (`sharegrid ledger account` lists them)",
                disputes.len() - 1
            );
        }
    }
    let disputes = disputes.len();
    let state = ledger.with_state(Clone::clone);
    let mut slashed = 0u128;
    for (p, &(_, _, _, lies)) in providers.iter().zip(PROVIDERS) {
        let id = p.handle.id();
        let (was, now) = (before.get(&id).copied().unwrap_or(0), state.slashable(&id));
        anyhow::ensure!(lies || was == now, "{}, an honest provider, lost stake", p.name);
        anyhow::ensure!(
            !lies || disputes == 0 || now < was,
            "{} lied and kept its stake",
            p.name
        );
        slashed += was - now;
        if was != now {
            println!(
                "    {:<8} stake {was} → {now}: slashed {}, {}% of what it held at each verdict",
                p.name,
                was - now,
                f64::from(state.params.slash_bps) / 100.0
            );
        }
    }
    println!("    honest providers' stake untouched");
    Ok(slashed)
}

/// The ledger's side: what the escrow locked, what each provider earned,
/// the treasury's fee and the slashes, read from the ledger and checked
/// against the receipts: every accepted task paid exactly once, nothing
/// for rejected results, payments + fee + refund = escrow to the unit, and
/// what was slashed went to the reporter, the validator and the treasury.
fn payment_report(
    providers: &[TestNode],
    ledger: &Arc<Ledger>,
    store: &JobStore,
    job: &JobId,
    requestor: &NodeId,
    balance_before: Amount,
    due: &Due<'_>,
) -> anyhow::Result<()> {
    let record = store.escrow(job)?.context("the job has no escrow")?;
    anyhow::ensure!(record.settled, "the job's escrow was not settled");
    let escrow = record.amount;
    let state = ledger.with_state(Clone::clone);
    let params = &state.params;
    let head = ledger.head();
    let nonce = |id: &NodeId| u128::from(state.accounts.get(id).map_or(0, |a| a.nonce));
    let mut paid = 0u128;
    println!("  payment    (read from the ledger: {} blocks)", head.height);
    println!(
        "    escrow   {escrow} locked (budget plus the {}% network fee)",
        f64::from(params.network_fee_bps) / 100.0
    );
    for p in providers {
        let id = p.handle.id();
        // What it holds now, less what it started with, its stake and its
        // transactions' fees: what the escrow paid it.
        let stake = state.slashable(&id);
        let slashed = STAKE - stake;
        let earned = (state.balance(&id).0 + STAKE + nonce(&id) * params.min_fee.0) - PROVIDER_FUNDS;
        let owed = due.owed.get(&id).copied().unwrap_or(0);
        anyhow::ensure!(
            earned == owed,
            "{} was paid {earned} but its agreeing receipts charge {owed}",
            p.name
        );
        paid += earned;
        // The providers follow the validator's blocks.
        let seen = p.ledger.as_ref().map_or(0, |l| l.head().height);
        let lost = if slashed > 0 {
            format!(", lost {slashed} of stake")
        } else {
            String::new()
        };
        println!(
            "    {:<8} earned {earned:>12}{lost}   (its ledger: block {seen})",
            p.name
        );
    }
    // Every transaction's fee goes to the treasury, with the network fee
    // and its share of the slashes; the rest of the slashes went to the
    // reporter and the validator (both the requestor here).
    let tx_fees: u128 = state.accounts.keys().map(|a| nonce(a) * params.min_fee.0).sum();
    let treasury = state.balance(&params.treasury).0;
    let slash_to_treasury = treasury - tx_fees - due.network_fee;
    let rewarded = due.slashed - slash_to_treasury;
    let refund = (state.balance(requestor).0 + escrow.0 + nonce(requestor) * params.min_fee.0)
        .checked_sub(balance_before.0 + rewarded)
        .context("the requestor holds less than its refund accounts for")?;
    println!(
        "    treasury {:>12}   (network fee {}, transaction fees {tx_fees}, slashes {slash_to_treasury})",
        treasury, due.network_fee
    );
    println!("    reporter {rewarded:>12}   to the requestor, for reporting and re-running (from the slashes)");
    println!("    refund   {refund:>12}   to the requestor");
    anyhow::ensure!(
        paid + due.network_fee + refund == escrow.0,
        "payments {paid} + fee {} + refund {refund} != escrow {escrow}",
        due.network_fee
    );
    let supply: u128 = FUNDS + PROVIDER_FUNDS * providers.len() as u128;
    anyhow::ensure!(state.supply() == supply, "supply {} != {supply}", state.supply());
    println!(
        "    check    payments {paid} + fee {} + refund {refund} = escrow {escrow}; slashed {} = reporter {rewarded} + treasury {slash_to_treasury}; supply {supply}: exact",
        due.network_fee, due.slashed
    );
    Ok(())
}

/// The validators, and the finalized head each holds: the same block and
/// state everywhere, proved by finalization certificates.
fn consensus_report(net: &Testnet, requestor: &Arc<Ledger>) -> anyhow::Result<()> {
    let head = requestor.head();
    let validators = requestor.genesis().validators.clone();
    println!(
        "  consensus  {} validators (commonware Simplex, f = {}), finalized height {} ({})",
        validators.len(),
        (validators.len() - 1) / 3,
        head.height,
        head.hash.short()
    );
    let mut ledgers = vec![("requestor".to_string(), requestor.clone())];
    for v in &net.validators {
        if let Some(l) = &v.ledger {
            ledgers.push((v.name.clone(), l.clone()));
        }
    }
    let root = requestor.with_state(sharegrid_ledger::State::root);
    for (name, l) in &ledgers {
        let h = l.head();
        // Every validator that holds the requestor's height holds the same block.
        let same = h.height < head.height
            || l.blocks(head.height, 1, usize::MAX)?.first().map(|b| b.hash()) == Some(head.hash);
        anyhow::ensure!(same, "{name} finalized another block at height {}", head.height);
        let state = if h.height == head.height {
            anyhow::ensure!(
                l.with_state(sharegrid_ledger::State::root) == root,
                "{name}'s state differs"
            );
            "same state root"
        } else {
            "catching up"
        };
        println!("    {:<12} {}  height {:>5}  {state}", name, l.me().short(), h.height);
    }
    Ok(())
}

/// Copies a binary PPM (P6, maxval 255) tile into the image at (x0, y0).
fn blit(image: &mut [u8], width: usize, ppm: &[u8], x0: usize, y0: usize) -> anyhow::Result<()> {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while i < ppm.len() && ppm[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < ppm.len() && !ppm[i].is_ascii_whitespace() {
            i += 1;
        }
        anyhow::ensure!(start < i, "truncated PPM header");
        fields.push(std::str::from_utf8(&ppm[start..i])?.to_string());
    }
    anyhow::ensure!(fields[0] == "P6" && fields[3] == "255", "not a P6 PPM with maxval 255");
    let (tw, th): (usize, usize) = (fields[1].parse()?, fields[2].parse()?);
    let pixels = &ppm[i + 1..];
    anyhow::ensure!(pixels.len() == tw * th * 3, "PPM size does not match its header");
    let height = image.len() / (width * 3);
    anyhow::ensure!(x0 + tw <= width && y0 + th <= height, "tile outside the image");
    for y in 0..th {
        let dst = ((y0 + y) * width + x0) * 3;
        image[dst..dst + tw * 3].copy_from_slice(&pixels[y * tw * 3..(y + 1) * tw * 3]);
    }
    Ok(())
}

fn write_png(path: &Path, w: u32, h: u32, rgb: &[u8]) -> anyhow::Result<()> {
    let file = std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(())
}
