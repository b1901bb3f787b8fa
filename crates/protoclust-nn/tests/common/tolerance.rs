//! The fixtures README's float32 rule, shared by the kernel tests.

/// max|got − want| ≤ 2e-5 · max|want| + 1e-7, and equal lengths.
pub fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 2e-5 * scale + 1e-7,
        "{what}: max error {err} over max |ref| {scale}"
    );
}
