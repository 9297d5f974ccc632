//! `gatehouse-crds`: writes the CRD manifests into the chart, and converts
//! MetalLB `IPAddressPool` manifests into `IPPool`s.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::io::Read;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse-crds",
    about = "Gatehouse CRD manifests and MetalLB migration"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write every CRD manifest (the default).
    Generate {
        /// Directory to write to [default: charts/gatehouse/crds of this workspace].
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read MetalLB IPAddressPool manifests (YAML, several documents) on
    /// stdin, write the equivalent IPPool manifests on stdout.
    ConvertMetallb,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command.unwrap_or(Command::Generate { out: None }) {
        Command::Generate { out } => {
            let dir = out.unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(gatehouse_crds::CRD_DIR)
            });
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for (file, crd) in gatehouse_crds::all() {
                let path = dir.join(file);
                std::fs::write(&path, gatehouse_crds::render(&crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        Command::ConvertMetallb => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .context("reading stdin")?;
            let converted = gatehouse_crds::metallb::convert(&input)?;
            for note in &converted.notes {
                eprintln!("note: {note}");
            }
            print!("{}", converted.yaml);
        }
    }
    Ok(())
}
