//! Gaussian blur with a given sigma (SwAV's PIL blur draws sigma from [0.1, 2]).

use crate::FloatImage;

/// Blurs in place with a separable Gaussian of standard deviation `sigma` pixels, reflecting at
/// the borders; the kernel spans ±ceil(3σ).
pub fn gaussian_blur(img: &mut FloatImage, sigma: f32) {
    if sigma <= 0.0 {
        return;
    }
    let r = (3.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let (w, h) = (img.width as isize, img.height as isize);
    let reflect = |i: isize, n: isize| -> usize {
        if n == 1 {
            return 0;
        }
        let period = 2 * (n - 1);
        let m = i.rem_euclid(period);
        (if m >= n { period - m } else { m }) as usize
    };
    let mut tmp = vec![0f32; img.data.len()];
    let plane = (w * h) as usize;
    for c in 0..3 {
        let src = &img.data[c * plane..(c + 1) * plane];
        let dst = &mut tmp[c * plane..(c + 1) * plane];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    acc += kv * src[(y * w) as usize + reflect(x + t as isize - r, w)];
                }
                dst[(y * w + x) as usize] = acc;
            }
        }
        let out = &mut img.data[c * plane..(c + 1) * plane];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0;
                for (t, kv) in k.iter().enumerate() {
                    acc += kv * dst[reflect(y + t as isize - r, h) * w as usize + x as usize];
                }
                out[(y * w + x) as usize] = acc;
            }
        }
    }
}
