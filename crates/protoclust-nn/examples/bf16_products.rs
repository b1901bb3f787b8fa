//! The products of bf16 inference against float32's, one thread, at ResNet-50's layer shapes
//! (m patch rows × k × n output channels): `cargo run --release -p protoclust-nn --example
//! bf16_products` prints GFLOP/s of `kernels::gemm` (f32) and `kernels::bf16_gemm` (AVX512-BF16).

use protoclust_nn::kernels::{bf16_gemm, gemm};
use std::time::Instant;

fn main() {
    if !bf16_gemm::supported() {
        println!("this CPU has no AVX512-BF16: nothing to compare");
        return;
    }
    println!("| m | k | n | f32 GFLOP/s | bf16 GFLOP/s | ratio |");
    println!("|---|---|---|---|---|---|");
    let shapes = [
        (512, 64, 64),
        (512, 576, 64),
        (128, 1152, 128),
        (64, 2304, 256),
        (32, 4608, 512),
        (128, 256, 64),
        (128, 64, 256),
        (128, 512, 2048),
        (256, 147, 64),
    ];
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let packed = bf16_gemm::PackedWeights::new(&w, k, n);
        let mut out = vec![0f32; m * n];
        let reps = (2e9 / (m * k * n) as f64).max(3.0) as usize;
        let t = Instant::now();
        for _ in 0..reps {
            let (a, b) = (gemm::View::rows(&a, m, k), gemm::View::rows(&w, k, n));
            gemm::matmul(&mut out, n, false, a, b);
        }
        let f32_s = t.elapsed().as_secs_f64() / reps as f64;
        let t = Instant::now();
        for _ in 0..reps {
            let w = packed.panels();
            bf16_gemm::matmul(&mut out, &a, m, w, bf16_gemm::Epilogue::default());
        }
        let bf16_s = t.elapsed().as_secs_f64() / reps as f64;
        let gflop = 2.0 * (m * k * n) as f64 / 1e9;
        println!(
            "| {m} | {k} | {n} | {:.1} | {:.1} | {:.2} |",
            gflop / f32_s,
            gflop / bf16_s,
            f32_s / bf16_s
        );
    }
}
