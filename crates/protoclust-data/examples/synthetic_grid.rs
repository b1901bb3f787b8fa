//! Writes a grid of built-in synthetic images (and two augmented crops of each) to a PNG.
//! Usage: cargo run --release -p protoclust-data --example synthetic_grid -- OUT.png

use protoclust_data::source::{Source, Synthetic};
use protoclust_data::transform::Normalize;
use protoclust_data::views::{CropGroup, MultiCrop, Photometric, ViewBuilder};
use rand::SeedableRng;

fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "synthetic.png".into());
    let src = Synthetic::new(64, 32, 0);
    let mc = MultiCrop {
        crops: vec![CropGroup {
            count: 2,
            size: 32,
            scale: [0.14, 1.0],
        }],
        photometric: Photometric {
            blur_p: 0.0,
            normalize: Normalize {
                mean: [0.0; 3],
                std: [1.0; 3],
            },
            ..Default::default()
        },
        ..Default::default()
    };
    let (cols, rows) = (12usize, 3usize);
    let mut grid = image::RgbImage::new((cols * 34) as u32, (rows * 34) as u32);
    for c in 0..cols {
        let s = src.get(c).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(c as u64);
        let views = mc.build(&s.image, &mut rng);
        let imgs = [
            s.image.clone(),
            views[0].image.to_rgb(),
            views[1].image.to_rgb(),
        ];
        for (r, img) in imgs.iter().enumerate() {
            for y in 0..32 {
                for x in 0..32 {
                    let p = &img.pixels[(y * 32 + x) * 3..(y * 32 + x) * 3 + 3];
                    grid.put_pixel(
                        (c * 34 + x) as u32,
                        (r * 34 + y) as u32,
                        image::Rgb([p[0], p[1], p[2]]),
                    );
                }
            }
        }
    }
    let big = image::imageops::resize(
        &grid,
        grid.width() * 3,
        grid.height() * 3,
        image::imageops::FilterType::Nearest,
    );
    big.save(&out).unwrap();
    println!("wrote {out}");
}
