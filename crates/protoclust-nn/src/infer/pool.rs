//! Max-pooling and global average pooling on channels-last maps.

use super::activation::Activation;
use rayon::prelude::*;

/// Output side of [`max_pool_3x3_s2`] for an input side.
pub fn max_pool_out(side: usize) -> usize {
    (side + 2 - 3) / 2 + 1
}

/// 3 × 3 max-pool, stride 2, padding 1 (the ImageNet stem's); padded cells never win.
pub fn max_pool_3x3_s2(x: &Activation) -> Activation {
    let (h, w, c) = (x.h, x.w, x.c);
    let (oh, ow) = (max_pool_out(h), max_pool_out(w));
    let mut data = vec![0.0f32; x.n * oh * ow * c];
    data.par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, out)| {
            let (img, oy) = (row / oh, row % oh);
            let src = &x.data[img * h * w * c..(img + 1) * h * w * c];
            for ox in 0..ow {
                let o = &mut out[ox * c..(ox + 1) * c];
                o.fill(f32::NEG_INFINITY);
                for dy in 0..3 {
                    let Some(iy) = (2 * oy + dy).checked_sub(1).filter(|&y| y < h) else {
                        continue;
                    };
                    for dx in 0..3 {
                        let Some(ix) = (2 * ox + dx).checked_sub(1).filter(|&x| x < w) else {
                            continue;
                        };
                        let s = &src[(iy * w + ix) * c..(iy * w + ix + 1) * c];
                        for (a, &b) in o.iter_mut().zip(s) {
                            // `max` keeps a NaN out; PyTorch propagates it: compare as it does.
                            if b > *a || b.is_nan() {
                                *a = b;
                            }
                        }
                    }
                }
            }
        });
    Activation {
        data,
        n: x.n,
        h: oh,
        w: ow,
        c,
    }
}

/// Mean over every pixel of each image: N × C, row-major.
pub fn global_average(x: &Activation) -> Vec<f32> {
    let (plane, c) = (x.h * x.w, x.c);
    let mut out = vec![0.0f32; x.n * c];
    if c == 0 || plane == 0 {
        return out;
    }
    out.par_chunks_mut(c)
        .zip(x.data.par_chunks(plane * c))
        .for_each(|(o, img)| {
            let mut sum = vec![0.0f64; c];
            for px in img.chunks_exact(c) {
                for (s, &v) in sum.iter_mut().zip(px) {
                    *s += v as f64;
                }
            }
            for (o, s) in o.iter_mut().zip(sum) {
                *o = (s / plane as f64) as f32;
            }
        });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pool_matches_a_naive_window_with_odd_sizes() {
        let (n, h, w, c) = (2, 7, 6, 3);
        let data: Vec<f32> = (0..n * h * w * c)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.1)
            .collect();
        let x = Activation { data, n, h, w, c };
        let y = max_pool_3x3_s2(&x);
        assert_eq!((y.h, y.w), (4, 3));
        for img in 0..n {
            for oy in 0..y.h {
                for ox in 0..y.w {
                    for ch in 0..c {
                        let mut best = f32::NEG_INFINITY;
                        for iy in (2 * oy) as isize - 1..=(2 * oy) as isize + 1 {
                            for ix in (2 * ox) as isize - 1..=(2 * ox) as isize + 1 {
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    let v = x.data
                                        [((img * h + iy as usize) * w + ix as usize) * c + ch];
                                    best = best.max(v);
                                }
                            }
                        }
                        assert_eq!(y.data[((img * y.h + oy) * y.w + ox) * c + ch], best);
                    }
                }
            }
        }
    }

    #[test]
    fn global_average_is_the_per_image_channel_mean() {
        let x = Activation {
            data: vec![1.0, 10.0, 3.0, 20.0, 5.0, 30.0, 7.0, 40.0],
            n: 2,
            h: 1,
            w: 2,
            c: 2,
        };
        assert_eq!(global_average(&x), vec![2.0, 15.0, 6.0, 35.0]);
    }
}
