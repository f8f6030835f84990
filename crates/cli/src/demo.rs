//! `sharegrid demo`: the embedded default. One process starts a whole
//! network on 127.0.0.1 — providers of different (emulated) speeds, one of
//! them lying, and a requestor — renders a Mandelbrot image as a job of
//! tiles with r = 2 through the real stack (libp2p, offers, the scheduler,
//! quorum verification, blobs, the job store), assembles the accepted tiles
//! into one PNG and prints a report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use sharegrid_core::{Amount, Arch, Determinism, GigafuelPerSec, Limits, NodeKey, TaskResult};
use sharegrid_net::NetConfig;
use sharegrid_node::{
    AgentOptions, BlobStore, FixedProbe, JobStore, JobSubmission, MachineInfo, NodeHandle, NodeOptions, Provider,
    ProviderPolicy, Requestor, State,
};
use sharegrid_sandbox::{Sandbox, SandboxConfig};

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
}

/// The providers: (name, emulated speed in Gfuel/s, slots, lies).
const PROVIDERS: &[(&str, f64, u32, bool)] = &[
    ("phone", 0.5, 1, false),
    ("laptop", 1.0, 2, false),
    ("desktop", 2.0, 2, false),
    ("server", 4.0, 4, false),
    ("liar", 4.0, 2, true),
];

struct Started {
    name: &'static str,
    handle: NodeHandle,
}

fn net() -> NetConfig {
    NetConfig {
        listen: vec![
            "/ip4/127.0.0.1/tcp/0"
                .parse()
                .unwrap_or_else(|_| unreachable!("valid multiaddr")),
        ],
        ..NetConfig::default()
    }
}

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
    let sandbox = Arc::new(Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.path().join("cache")),
        ..SandboxConfig::default()
    })?);
    println!(
        "sharegrid demo: a network of {} providers and a requestor on 127.0.0.1",
        PROVIDERS.len()
    );
    let mut providers = Vec::new();
    for (i, &(name, speed, slots, lies)) in PROVIDERS.iter().enumerate() {
        let key = Arc::new(NodeKey::from_seed([i as u8 + 1; 32]));
        let home = dir.path().join(name);
        let blobs = BlobStore::open(home.join("blobs"), 1 << 30)?;
        let policy = ProviderPolicy {
            enabled: true,
            slots,
            price_floor: Amount(if lies { 1 } else { 2 + i as u128 }),
            offer_interval_secs: 2,
            ..ProviderPolicy::default()
        };
        let mut provider =
            Provider::new(key.clone(), policy, sandbox.clone(), blobs.clone()).emulating_speed(GigafuelPerSec(speed));
        if lies {
            provider = provider.faulty();
        }
        let handle = sharegrid_node::start(NodeOptions {
            key,
            net: net(),
            blobs,
            outputs: BlobStore::open(home.join("outputs"), 1 << 30)?,
            agent: Some(AgentOptions {
                provider,
                machine: MachineInfo {
                    arch: Arch::host(),
                    cores: slots,
                    memory_bytes: 4 << 30,
                },
                speed: GigafuelPerSec(speed),
                probe: Arc::new(FixedProbe::default()),
                max_fetch_bytes: 1 << 30,
            }),
        })
        .await?;
        let lie = if lies { ", returns wrong results" } else { "" };
        println!("  provider {name:<8} {speed:>4} Gfuel/s × {slots} slot(s){lie}");
        providers.push(Started { name, handle });
    }
    let rkey = Arc::new(NodeKey::from_seed([100; 32]));
    let rblobs = BlobStore::open(dir.path().join("requestor/blobs"), 1 << 30)?;
    let requestor = sharegrid_node::start(NodeOptions {
        key: rkey,
        net: net(),
        blobs: rblobs.clone(),
        outputs: BlobStore::open(dir.path().join("requestor/outputs"), 1 << 30)?,
        agent: None,
    })
    .await?;
    for p in &providers {
        let addr = p.handle.listen_addrs().await[0]
            .clone()
            .with_p2p(p.handle.peer_id())
            .map_err(|_| anyhow::anyhow!("bad address"))?;
        requestor.dial(addr).await.map_err(anyhow::Error::msg)?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while requestor.offers().await.len() < providers.len() {
        anyhow::ensure!(Instant::now() < deadline, "the providers' offers did not arrive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("  requestor sees {} offers\n", providers.len());

    let store = JobStore::open(&dir.path().join("requestor/node.db"))?;
    let engine = Requestor::new(requestor.clone(), rblobs.clone(), store.clone());
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
        price_ceiling: Amount(100),
        budget: Amount(1_000_000_000),
        deadline_secs: Some(600),
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
    let id = engine.submit(sub)?;
    let job = loop {
        let row = store.job(&id)?.context("the job vanished")?;
        if tty {
            let line = crate::jobs::progress_line(&row, engine.live(&id).as_ref());
            eprint!("\r  {line}   ");
        }
        if row.state != State::Running {
            if tty {
                eprintln!();
            }
            break row;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let wall = started.elapsed();
    anyhow::ensure!(
        job.state == State::Done,
        "the job failed: {}",
        job.reason.unwrap_or_default()
    );

    // Assemble the accepted tiles.
    let rows = store.tasks(&id)?;
    let (w, h) = (a.width as usize, a.height as usize);
    let mut image = vec![0u8; w * h * 3];
    let mut fuel = 0u64;
    let mut per_provider: HashMap<String, (usize, usize)> = HashMap::new();
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
    for p in &providers {
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
    println!("  image      {}", a.out.display());
    requestor.shutdown().await;
    for p in providers {
        p.handle.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
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
