//! A batch of feature maps in channels-last order on the host.

/// N × H × W × C feature maps, element (n, y, x, c) at `((n·H + y)·W + x)·C + c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Activation {
    /// The values, channels fastest.
    pub data: Vec<f32>,
    /// Images.
    pub n: usize,
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Activation {
    /// Channels-last copy of N × C × H × W values (row-major NCHW).
    pub fn from_nchw(x: &[f32], n: usize, c: usize, h: usize, w: usize) -> Self {
        assert_eq!(x.len(), n * c * h * w, "Activation::from_nchw: length");
        let mut data = vec![0.0; x.len()];
        let plane = h * w;
        if c == 0 || plane == 0 {
            return Self { data, n, h, w, c };
        }
        for (img, out) in x
            .chunks_exact(c * plane)
            .zip(data.chunks_exact_mut(c * plane))
        {
            for (ch, src) in img.chunks_exact(plane).enumerate() {
                for (p, &v) in src.iter().enumerate() {
                    out[p * c + ch] = v;
                }
            }
        }
        Self { data, n, h, w, c }
    }

    /// Row-major N × C × H × W copy.
    pub fn to_nchw(&self) -> Vec<f32> {
        let plane = self.h * self.w;
        let mut out = vec![0.0; self.data.len()];
        if self.c == 0 || plane == 0 {
            return out;
        }
        for (src, dst) in self
            .data
            .chunks_exact(plane * self.c)
            .zip(out.chunks_exact_mut(plane * self.c))
        {
            for (p, px) in src.chunks_exact(self.c).enumerate() {
                for (ch, &v) in px.iter().enumerate() {
                    dst[ch * plane + p] = v;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchw_round_trip_on_odd_sizes() {
        let (n, c, h, w) = (2, 3, 5, 7);
        let x: Vec<f32> = (0..n * c * h * w).map(|i| i as f32).collect();
        let a = Activation::from_nchw(&x, n, c, h, w);
        assert_eq!(
            a.data[c], 1.0,
            "pixel 1 of channel 0 follows pixel 0's channels"
        );
        assert_eq!(a.to_nchw(), x);
    }
}
