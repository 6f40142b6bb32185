//! `tamis demo`: build a sample corpus and run the pipeline. Filled in below.
use crate::args::{DemoArgs, GlobalArgs};
use anyhow::Result;
pub fn run(_g: &GlobalArgs, _a: &DemoArgs) -> Result<()> {
    anyhow::bail!("demo is being written")
}
