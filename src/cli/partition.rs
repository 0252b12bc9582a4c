//! `kafsim partition` (not implemented yet).

#[derive(clap::Args)]
pub struct PartitionArgs {
    /// Arguments (not implemented yet)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<String>,
}

pub fn main(_args: PartitionArgs) -> u8 {
    eprintln!("kafsim partition: not implemented yet");
    super::EXIT_BAD_INPUT
}
