//! `clipsearch`: the command-line front of the engine, indexer and query crates. This file only
//! parses arguments, sets up logging and turns typed errors into messages and exit codes; the
//! work happens in the library crates.

mod args;
mod classify_cmd;
mod commands;
mod demo_cmd;
mod embed_cmd;
mod exit;
mod index_cmd;
mod info_cmd;
mod models_cmd;
mod progress;
mod search_cmd;
mod serve_cmd;
mod stats_cmd;
mod target;
mod train_cmd;

use clap::Parser;

use commands::Cli;

fn main() {
    clipsearch::device::tune_cpu_pools();
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let code = match commands::run(cli) {
        Ok(code) => code,
        // A reader that stopped early (`| head`) is not an error: exit quietly, as grep does.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let code = exit::code_for(&e);
            eprintln!("clipsearch: {}", exit::message(&e));
            code
        }
    };
    std::process::exit(code);
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter =
        EnvFilter::try_from_env("CLIPSEARCH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
