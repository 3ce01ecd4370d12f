//! `hookrelay`: the admin API from a terminal.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = hookrelay_cli::Cli::parse();
    let code = match hookrelay_cli::run(cli).await {
        Ok(out) => {
            print!("{out}");
            0
        }
        Err(e) => {
            eprintln!("hookrelay: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code);
}
