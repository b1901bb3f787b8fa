//! How a chunk of images becomes the operands of one matrix product.
//!
//! - [`Lowering::Grid`] (stride 1): the images are zero-padded once, and every output pixel is
//!   computed on the padded grid (row pitch Wp): each patch-matrix row is then one contiguous
//!   copy of L = (OH − 1)·Wp + OW values, and the col2im adjoint one contiguous add. The
//!   Wp − OW extra columns per output row are computed and dropped (zero in gradients).
//! - [`Lowering::Patches`] (any stride): exactly the output pixels; each row gathers from the
//!   padded image through one table of pixel offsets shared by all rows.

use super::geometry::ConvGeometry;

/// The column layout of a chunk's patch matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lowering {
    /// Output pixels on the padded grid: (OH − 1)·Wp + OW columns per image.
    Grid,
    /// Exactly the OH·OW output pixels per image.
    Patches,
}

/// Extra columns the grid may cost before im2col is cheaper (Wp / OW).
const MAX_GRID_OVERHEAD: f64 = 1.25;

impl Lowering {
    /// The lowering used for `g`.
    pub fn of(g: &ConvGeometry) -> Self {
        let (pitch, _) = padded(g);
        let stride_one = g.stride_h == 1 && g.stride_w == 1;
        if stride_one && pitch as f64 <= MAX_GRID_OVERHEAD * g.out_w as f64 {
            Lowering::Grid
        } else {
            Lowering::Patches
        }
    }

    /// Columns per image.
    pub fn span(&self, g: &ConvGeometry) -> usize {
        match self {
            Lowering::Grid => (g.out_h - 1) * padded(g).0 + g.out_w,
            Lowering::Patches => g.out_pixels(),
        }
    }

    /// Scratch elements one image needs besides the matrices (the padded image).
    pub fn image_scratch(&self, g: &ConvGeometry) -> usize {
        let (pitch, rows) = padded(g);
        g.in_c * rows * pitch
    }

    /// Writes the patch matrix (K rows, `nb` images · span columns) of the chunk `x` into `col`.
    pub fn patches(
        &self,
        g: &ConvGeometry,
        x: &[f32],
        nb: usize,
        col: &mut [f32],
        pad: &mut [f32],
    ) {
        let span = self.span(g);
        let cols = nb * span;
        let (pitch, rows) = padded(g);
        let table = self.offsets(g, pitch);
        for i in 0..nb {
            let xi = &x[i * g.in_len()..(i + 1) * g.in_len()];
            pad_image(g, xi, pitch, rows, pad);
            for (r, tap) in taps(g) {
                let src = &pad[tap..];
                let dst = &mut col[r * cols + i * span..r * cols + (i + 1) * span];
                match self {
                    Lowering::Grid => dst.copy_from_slice(&src[..span]),
                    Lowering::Patches => {
                        dst.iter_mut().zip(&table).for_each(|(d, &o)| *d = src[o]);
                    }
                }
            }
        }
    }

    /// Offset in the padded image of each output pixel's top-left tap (empty for the grid).
    fn offsets(&self, g: &ConvGeometry, pitch: usize) -> Vec<usize> {
        match self {
            Lowering::Grid => Vec::new(),
            Lowering::Patches => (0..g.out_h)
                .flat_map(|oh| {
                    (0..g.out_w).map(move |ow| oh * g.stride_h * pitch + ow * g.stride_w)
                })
                .collect(),
        }
    }

    /// Lays the chunk's output gradient (nb × O × OH × OW) out as O rows of `nb`·span columns,
    /// zero in the grid's extra columns.
    pub fn gather(&self, g: &ConvGeometry, dy: &[f32], nb: usize, out: &mut [f32]) {
        let (o, p, span) = (g.out_c, g.out_pixels(), self.span(g));
        let cols = nb * span;
        for i in 0..nb {
            for oc in 0..o {
                let src = &dy[(i * o + oc) * p..(i * o + oc + 1) * p];
                let dst = &mut out[oc * cols + i * span..oc * cols + (i + 1) * span];
                match self {
                    Lowering::Patches => dst.copy_from_slice(src),
                    Lowering::Grid => {
                        let pitch = padded(g).0;
                        for oh in 0..g.out_h {
                            let row = &mut dst[oh * pitch..(oh * pitch + pitch).min(span)];
                            row[..g.out_w].copy_from_slice(&src[oh * g.out_w..(oh + 1) * g.out_w]);
                            row[g.out_w..].fill(0.0);
                        }
                    }
                }
            }
        }
    }

    /// The inverse of [`Lowering::gather`]: O rows of `nb`·span columns into nb × O × OH × OW.
    pub fn scatter(&self, g: &ConvGeometry, rows: &[f32], nb: usize, y: &mut [f32]) {
        let (o, p, span) = (g.out_c, g.out_pixels(), self.span(g));
        let cols = nb * span;
        for i in 0..nb {
            for oc in 0..o {
                let src = &rows[oc * cols + i * span..oc * cols + (i + 1) * span];
                let dst = &mut y[(i * o + oc) * p..(i * o + oc + 1) * p];
                match self {
                    Lowering::Patches => dst.copy_from_slice(src),
                    Lowering::Grid => {
                        let pitch = padded(g).0;
                        for oh in 0..g.out_h {
                            dst[oh * g.out_w..(oh + 1) * g.out_w]
                                .copy_from_slice(&src[oh * pitch..oh * pitch + g.out_w]);
                        }
                    }
                }
            }
        }
    }

    /// Adds the patch-matrix gradient `col` of the chunk back onto its images' gradient `dx`
    /// (overwritten).
    pub fn col2im(
        &self,
        g: &ConvGeometry,
        col: &[f32],
        nb: usize,
        dx: &mut [f32],
        pad: &mut [f32],
    ) {
        let span = self.span(g);
        let cols = nb * span;
        let (pitch, rows) = padded(g);
        let table = self.offsets(g, pitch);
        for i in 0..nb {
            let dxi = &mut dx[i * g.in_len()..(i + 1) * g.in_len()];
            let pad = &mut pad[..g.in_c * rows * pitch];
            pad.fill(0.0);
            for (r, tap) in taps(g) {
                let dst = &mut pad[tap..];
                let src = &col[r * cols + i * span..r * cols + (i + 1) * span];
                match self {
                    Lowering::Grid => dst[..span].iter_mut().zip(src).for_each(|(d, s)| *d += *s),
                    // Distinct output pixels of one tap read distinct inputs.
                    Lowering::Patches => src.iter().zip(&table).for_each(|(s, &o)| dst[o] += *s),
                }
            }
            unpad_image(g, pad, pitch, rows, dxi);
        }
    }
}

/// Scratch for one chunk of `nb` images: (patch matrix, O-row matrix, padded image) lengths.
pub(super) fn scratch_lens(g: &ConvGeometry, low: &Lowering, nb: usize) -> [usize; 3] {
    let cols = nb * low.span(g);
    [g.patch_len() * cols, g.out_c * cols, low.image_scratch(g)]
}

/// `buf` cut into the three [`scratch_lens`] parts.
pub(super) fn split3(buf: &mut [f32], lens: [usize; 3]) -> (&mut [f32], &mut [f32], &mut [f32]) {
    let (a, rest) = buf.split_at_mut(lens[0]);
    let (b, c) = rest.split_at_mut(lens[1]);
    (a, b, &mut c[..lens[2]])
}

/// Every patch-matrix row `r = (c·KH + kh)·KW + kw` with the offset of its tap (kh, kw) of
/// channel c in the padded image.
pub(super) fn taps(g: &ConvGeometry) -> impl Iterator<Item = (usize, usize)> + '_ {
    let (pitch, rows) = padded(g);
    (0..g.in_c).flat_map(move |c| {
        (0..g.k_h).flat_map(move |kh| {
            (0..g.k_w).map(move |kw| {
                (
                    (c * g.k_h + kh) * g.k_w + kw,
                    c * rows * pitch + kh * pitch + kw,
                )
            })
        })
    })
}

/// (pitch, rows) of the zero-padded image.
pub(super) fn padded(g: &ConvGeometry) -> (usize, usize) {
    (g.in_w + g.pad_l + g.pad_r, g.in_h + g.pad_t + g.pad_b)
}

/// Copies one C × H × W image into the middle of its zero-padded C × rows × pitch copy.
pub(super) fn pad_image(g: &ConvGeometry, x: &[f32], pitch: usize, rows: usize, pad: &mut [f32]) {
    let plane = rows * pitch;
    let pad = &mut pad[..g.in_c * plane];
    for c in 0..g.in_c {
        let p = &mut pad[c * plane..(c + 1) * plane];
        p[..g.pad_t * pitch].fill(0.0);
        p[(g.pad_t + g.in_h) * pitch..].fill(0.0);
        for h in 0..g.in_h {
            let row = &mut p[(g.pad_t + h) * pitch..(g.pad_t + h + 1) * pitch];
            row[..g.pad_l].fill(0.0);
            row[g.pad_l..g.pad_l + g.in_w]
                .copy_from_slice(&x[(c * g.in_h + h) * g.in_w..(c * g.in_h + h + 1) * g.in_w]);
            row[g.pad_l + g.in_w..].fill(0.0);
        }
    }
}

/// The interior of a padded C × rows × pitch image, as C × H × W.
fn unpad_image(g: &ConvGeometry, pad: &[f32], pitch: usize, rows: usize, x: &mut [f32]) {
    let plane = rows * pitch;
    for c in 0..g.in_c {
        for h in 0..g.in_h {
            let src = c * plane + (g.pad_t + h) * pitch + g.pad_l;
            x[(c * g.in_h + h) * g.in_w..(c * g.in_h + h + 1) * g.in_w]
                .copy_from_slice(&pad[src..src + g.in_w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// <patches(x), c> = <x, col2im(c)> for both lowerings, on padded, strided geometries.
    #[test]
    fn col2im_is_the_adjoint_of_patches() {
        let cases = [
            ([2, 3, 7, 6], [2, 3, 3, 2], [2, 1], [(1, 2), (0, 1)]),
            ([3, 2, 9, 9], [4, 2, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([2, 5, 4, 4], [3, 5, 3, 3], [1, 1], [(1, 1), (1, 1)]),
            ([2, 2, 8, 8], [3, 2, 1, 1], [2, 2], [(0, 0), (0, 0)]),
        ];
        for (xs, ws, stride, pad) in cases {
            let g = ConvGeometry::new(xs, ws, stride, pad).unwrap();
            let low = Lowering::of(&g);
            let nb = g.batch;
            let x: Vec<f32> = (0..nb * g.in_len())
                .map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5)
                .collect();
            let cols = nb * low.span(&g);
            let mut col = vec![0.0; g.patch_len() * cols];
            let mut scratch = vec![0.0; low.image_scratch(&g)];
            low.patches(&g, &x, nb, &mut col, &mut scratch);
            // The adjoint's input must be zero where the grid has no output pixel.
            let mut c: Vec<f32> = (0..col.len())
                .map(|i| ((i * 104729) % 89) as f32 / 89.0 - 0.5)
                .collect();
            if low == Lowering::Grid {
                let pitch = padded(&g).0;
                for (j, v) in c.iter_mut().enumerate() {
                    if (j % cols % low.span(&g)) % pitch >= g.out_w {
                        *v = 0.0;
                    }
                }
            }
            let mut dx = vec![1.0; x.len()];
            low.col2im(&g, &c, nb, &mut dx, &mut scratch);
            let lhs: f64 = col
                .iter()
                .zip(&c)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            let rhs: f64 = x
                .iter()
                .zip(&dx)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            assert!((lhs - rhs).abs() < 1e-3, "{low:?}: {lhs} vs {rhs}");
        }
    }
}
