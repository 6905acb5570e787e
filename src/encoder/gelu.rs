//! GELU (tanh approximation) as one fused, parallel CPU op with its own backward pass.
//!
//! Written by hand because candle's `Tensor::gelu` is the bottleneck of training the
//! image tower on a CPU: its forward pass runs `tanh` on one core, and its backward
//! pass is built from ten tensor ops (two `powf`, a `tanh`, temporaries for each), all
//! single-threaded. Profiling `vitrina train` put 39% of the time in them. This op
//! computes the same expression as candle's and its exact derivative in one pass each,
//! split across cores, with `tanh` from a rational function ([`tanh`]) that the
//! compiler vectorises instead of libm's scalar `tanhf`: with libm, `tanhf` was 36% of
//! a `vitrina bench` profile, more than all the tower's matrix products.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

/// candle's literal, so the expression is candle's but for `tanh`.
#[allow(clippy::excessive_precision)]
const SQRT_TWO_OVER_PI: f32 = 0.79788456080286535587989211986876373;
const CUBIC: f32 = 0.044715;
/// Elements per parallel task: large enough that scheduling is noise.
const CHUNK: usize = 16 * 1024;

/// GELU of `x`, element-wise; differentiable. On a GPU (training with `--device
/// cuda`), candle's own `gelu`: the same expression, whose kernels are already parallel.
pub fn gelu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !x.device().is_cpu() {
        return x.gelu();
    }
    x.contiguous()?.apply_op1(Gelu)
}

/// The argument of tanh, k (x + c x^3), written as candle writes it.
#[inline]
fn tanh_argument(v: f32) -> f32 {
    SQRT_TWO_OVER_PI * v * (1.0 + CUBIC * v * v)
}

/// tanh as Eigen computes it for f32 (`generic_fast_tanh_float`): an odd degree-13 over
/// even degree-6 rational function of x clamped to +-7.9, beyond which tanh is within
/// 3e-7 of +-1. Written here because libm's `tanhf` is a scalar call the compiler cannot
/// vectorise and no maintained crate offers a vectorisable f32 tanh on stable Rust; this
/// has only multiplies, adds, a clamp and one division. Its absolute error against tanh
/// is under 4e-7 (a few f32 ulps near +-1; measured 3.9e-7, and the tests bound it).
#[inline]
#[allow(clippy::excessive_precision)]
pub(crate) fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311_107_635_498;
    const A: [f32; 7] = [
        4.893_524_558_917_86e-3,
        6.372_619_288_754_36e-4,
        1.485_722_357_179_79e-5,
        5.122_297_090_371_14e-8,
        -8.604_671_522_137_35e-11,
        2.000_187_904_824_77e-13,
        -2.760_768_477_423_55e-16,
    ];
    const B: [f32; 4] = [
        4.893_525_185_543_85e-3,
        2.268_434_632_439_00e-3,
        1.185_347_056_866_54e-4,
        1.198_258_394_667_02e-6,
    ];
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = A.iter().rev().fold(0.0, |acc, &a| acc * x2 + a) * x;
    let q = B.iter().rev().fold(0.0, |acc, &b| acc * x2 + b);
    p / q
}

/// Candle's expression, term for term, with [`tanh`] for libm's.
#[inline]
fn forward(v: f32) -> f32 {
    0.5 * v * (1.0 + tanh(tanh_argument(v)))
}

/// d gelu / dx = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3)),
/// the derivative of [`forward`] exactly (the same t).
#[inline]
fn derivative(v: f32) -> f32 {
    let t = tanh(tanh_argument(v));
    0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_TWO_OVER_PI * (1.0 + 3.0 * CUBIC * v * v)
}

/// The contiguous f32 slice a layout addresses, or an error naming the op.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 tensors are supported");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "vitrina-gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(storage, layout, self.name())?;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, x)| o.iter_mut().zip(x).for_each(|(o, &v)| *o = forward(v)));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = arg.apply_op2_no_bwd(&grad_res.contiguous()?, &GeluGrad)?;
        Ok(Some(grad))
    }
}

/// (x, upstream gradient) -> upstream gradient x d gelu / dx.
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "vitrina-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = slice(s1, l1, self.name())?;
        let g = slice(s2, l2, self.name())?;
        if x.len() != g.len() {
            candle_core::bail!("{}: shapes differ", self.name());
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK).zip(g.par_chunks(CHUNK)))
            .for_each(|(o, (x, g))| {
                for ((o, &v), &g) in o.iter_mut().zip(x).zip(g) {
                    *o = g * derivative(v);
                }
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn sample() -> Vec<f32> {
        // Both tails, zero, and enough elements to span several parallel chunks.
        (0..40_000)
            .map(|i| (i as f32 - 20_000.0) / 2_500.0)
            .collect()
    }

    #[test]
    fn tanh_is_within_4e_7_of_exact_tanh() {
        // Dense over the range where tanh is not yet 1 in f32, and far beyond it.
        let mut worst = 0f64;
        for i in -2_000_000..=2_000_000 {
            let x = i as f32 * 6e-6;
            let err = (tanh(x) as f64 - (x as f64).tanh()).abs();
            worst = worst.max(err);
        }
        assert!(worst < 4e-7, "worst absolute error {worst}");
        for x in [-1e30f32, -50.0, -9.0, 9.0, 50.0, 1e30] {
            assert!(
                (tanh(x) - x.signum()).abs() < 4e-7,
                "tanh({x}) = {}",
                tanh(x)
            );
        }
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn forward_matches_candle() {
        let x = Tensor::new(sample(), &Device::Cpu).unwrap();
        let ours = gelu(&x).unwrap().to_vec1::<f32>().unwrap();
        let candle = x.gelu().unwrap().to_vec1::<f32>().unwrap();
        for ((&a, &b), v) in ours.iter().zip(&candle).zip(sample()) {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "x={v} ours {a} candle {b}"
            );
        }
    }

    #[test]
    fn gradient_matches_candle_and_finite_differences() {
        let values = sample();
        let x = Var::new(values.clone(), &Device::Cpu).unwrap();
        // A weighted sum, so each element's upstream gradient differs.
        let weights: Vec<f32> = (0..values.len()).map(|i| (i % 7) as f32 - 3.0).collect();
        let w = Tensor::new(weights.clone(), &Device::Cpu).unwrap();
        let ours_loss = (gelu(x.as_tensor()).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let ours = ours_loss.backward().unwrap();
        let ours = ours.get(&x).unwrap().to_vec1::<f32>().unwrap();
        let candle_loss = (x.as_tensor().gelu().unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap();
        let candle = candle_loss.backward().unwrap();
        let candle = candle.get(&x).unwrap().to_vec1::<f32>().unwrap();
        for (i, (&a, &b)) in ours.iter().zip(&candle).enumerate() {
            // candle's backward rounds its constants to 6 digits.
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                "x={} ours {a} candle {b}",
                values[i]
            );
        }
        let h = 1e-2f64;
        for (i, &v) in values.iter().enumerate().step_by(997) {
            let f = |x: f64| 0.5 * x * (1.0 + (0.7978845608 * (x + 0.044715 * x * x * x)).tanh());
            let numeric = weights[i] as f64 * (f(v as f64 + h) - f(v as f64 - h)) / (2.0 * h);
            assert!(
                (ours[i] as f64 - numeric).abs() < 1e-3,
                "x={v}: {} vs {numeric}",
                ours[i]
            );
        }
    }
}
