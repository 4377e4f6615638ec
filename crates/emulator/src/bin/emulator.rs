//! `bedrock-batch-emulator [--port N] [--profile fast|realistic] [--no-verify-signatures]`: runs the
//! emulator until Ctrl-C.

use bedrock_batch_emulator::{Emulator, EmulatorOptions};

fn usage() -> ! {
    eprintln!(
        "usage: bedrock-batch-emulator [--port N] [--profile fast|realistic] [--min-records N] [--max-concurrent-jobs N] [--region R] [--no-verify-signatures]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut opts = EmulatorOptions { profile: bedrock_batch_emulator::Profile::Realistic, ..Default::default() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => opts.port = val().parse().unwrap_or_else(|_| usage()),
            "--profile" => opts.profile = val().parse().unwrap_or_else(|_| usage()),
            "--min-records" => {
                opts.min_records =
                    bedrock_batch_emulator::options::MinRecords::All(val().parse().unwrap_or_else(|_| usage()))
            }
            "--max-concurrent-jobs" => opts.max_concurrent_jobs = val().parse().unwrap_or_else(|_| usage()),
            "--region" => opts.region = val(),
            "--no-verify-signatures" => opts.verify_signatures = false,
            "--help" | "-h" => usage(),
            _ => usage(),
        }
    }
    let emu = match Emulator::start(opts).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    };
    println!("Bedrock emulator listening on 127.0.0.1");
    println!("  bedrock:        {}", emu.endpoints.bedrock);
    println!("  bedrockRuntime: {}", emu.endpoints.bedrock_runtime);
    println!("  s3:             {} (bucket {})", emu.endpoints.s3, emu.bucket);
    println!("  openai:         {}", emu.endpoints.openai);
    println!("  serviceQuotas:  {}", emu.endpoints.service_quotas);
    let _ = tokio::signal::ctrl_c().await;
    emu.stop().await;
}
