//! `sharegrid`: the command-line interface. Parses commands, wires them to
//! the library crates, formats output for people (tables, one-line outcomes)
//! and for programs (`--json`). No protocol logic lives here.

mod bench;
mod demo;
mod devnet;
mod guests;
mod home;
mod jobs;
mod network;
mod node_cmds;
mod run;
mod runtimes;
mod units;
mod wallet;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sharegrid: a decentralized compute-sharing network.
#[derive(Parser, Debug)]
#[command(name = "sharegrid", version, about, long_about = None)]
struct Cli {
    /// Node home directory (config, keys, caches). Default: $SHAREGRID_HOME or ~/.sharegrid.
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the demo: a whole network on 127.0.0.1 renders a Mandelbrot PNG, every tile verified by quorum and paid through the ledger.
    Demo(demo::DemoArgs),
    /// Start a local network of separate node processes on 127.0.0.1: validators ordering the ledger by BFT consensus, and providers.
    Devnet(devnet::DevnetArgs),
    /// Run one task locally in the deterministic sandbox.
    Run(Box<run::RunArgs>),
    /// Runtimes that run a job's script: add python, list.
    #[command(subcommand)]
    Runtime(runtimes::RuntimeCommand),
    /// Measure this machine's speed in gigafuel per second.
    Bench(bench::BenchArgs),
    /// Create the node home: config.toml with documented defaults and an identity key.
    Init {
        /// Join the network of the node at this address (HOST:PORT, or a
        /// multiaddr): fetch its genesis and record the node as a bootstrap
        /// peer. Without it, the home makes a test network of its own.
        #[arg(long, value_name = "ADDRESS")]
        join: Option<String>,
        /// With --join: the network's genesis hash (or a prefix of at least
        /// 8 hex digits) to check before joining.
        #[arg(long, value_name = "HASH", requires = "join")]
        genesis_hash: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The node configuration.
    #[command(subcommand)]
    Config(node_cmds::ConfigCommand),
    /// Run the node: join the network, provide compute if configured, serve local commands.
    Node(network::NodeArgs),
    /// List the live offers the running node has seen (--wait N: until there are N).
    Offers(network::OffersArgs),
    /// The running node's state: peers, offers, provider slots, rejected input.
    Status(network::ListArgs),
    /// Submit a job file to the running node and follow it.
    Submit(jobs::SubmitArgs),
    /// List the node's jobs.
    Jobs(network::ListArgs),
    /// One job: status, per-task detail, why no provider matches.
    Job(jobs::JobArgs),
    /// Cancel a running job: nothing more is assigned; accepted results are kept and paid, the rest of the escrow refunded.
    Cancel(jobs::CancelArgs),
    /// Write a job's accepted outputs to a directory.
    Results(jobs::ResultsArgs),
    /// This node's account: address, balance, history.
    Wallet(wallet::WalletArgs),
    /// Send tokens from this node's account (through the running node).
    Transfer(wallet::TransferArgs),
    /// Test tokens for this node's account from the validator's faucet (a test network's).
    Faucet,
    /// This node's stake: show, bond AMOUNT, unbond AMOUNT, withdraw.
    #[command(subcommand)]
    Stake(wallet::StakeCommand),
    /// Stop the running node (as Ctrl-C does) and wait until it has.
    Stop,
    /// The running node's web dashboard: the address to open, with the API token.
    Dashboard,
    /// This home's node id (its account address, and what `run --on` takes).
    Id,
    /// Read and check the ledger: blocks, tx ID, account ADDR, verify.
    #[command(subcommand)]
    Ledger(wallet::LedgerCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon reports what it does; one-shot commands only warnings.
    let default_filter = match cli.command {
        Command::Node(_) => "warn,sharegrid_node=info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: a detached node's log is a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHAREGRID_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .init();
    let home = home::resolve(cli.home.as_deref());
    let result = match cli.command {
        Command::Demo(args) => demo::main(&home, args),
        Command::Devnet(args) => devnet::main(args),
        Command::Run(args) => run::main(&home, *args),
        Command::Runtime(cmd) => runtimes::main(&home, cmd),
        Command::Bench(args) => bench::main(&home, args),
        Command::Init {
            join,
            genesis_hash,
            json,
        } => match join {
            Some(addr) => node_cmds::join(&home, &addr, genesis_hash.as_deref(), json),
            None => node_cmds::init(&home, json),
        },
        Command::Config(cmd) => node_cmds::config(&home, cmd),
        Command::Node(args) => network::node(&home, args),
        Command::Offers(args) => network::offers(&home, args),
        Command::Status(args) => network::status(&home, args),
        Command::Submit(args) => jobs::submit(&home, args),
        Command::Jobs(args) => jobs::jobs(&home, args.json),
        Command::Job(args) => jobs::job(&home, args),
        Command::Results(args) => jobs::results(&home, args),
        Command::Wallet(args) => wallet::wallet(&home, args),
        Command::Transfer(args) => wallet::transfer(&home, args),
        Command::Faucet => wallet::faucet(&home),
        Command::Stake(cmd) => wallet::stake(&home, cmd),
        Command::Stop => network::stop(&home),
        Command::Id => node_cmds::id(&home),
        Command::Dashboard => node_cmds::dashboard(&home),
        Command::Cancel(args) => jobs::cancel(&home, args),
        Command::Ledger(cmd) => wallet::ledger(&home, cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
