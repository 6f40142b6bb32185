//! `cargo run --example fasttext_predict -- MODEL K < lines`: the top K labels of each line,
//! tab-separated `label probability` pairs (compare with fastText's own `predict`).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let model = tamis_core::fasttext::FastText::open(args.get(1).ok_or("MODEL")?.as_ref())?;
    let k: usize = args.get(2).map_or(Ok(1), |s| s.parse())?;
    for line in std::io::stdin().lines() {
        let line = line?;
        let out: Vec<String> = model
            .predict(&line, k, 0.0)
            .iter()
            .map(|(l, p)| format!("{l} {p:e}"))
            .collect();
        println!("{}", out.join("\t"));
    }
    Ok(())
}
