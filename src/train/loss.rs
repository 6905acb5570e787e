//! The CLIP contrastive loss (Radford et al. 2021): in a batch of matched pairs, each
//! image must pick its own text out of all the batch's texts, and each text its image.

use anyhow::Result;
use candle_core::{DType, Tensor};
use candle_nn::loss::cross_entropy;

/// Symmetric cross-entropy over `scale * image . text^T`; rows are L2-normalised vectors
/// and row i of each is a matched pair.
pub fn clip_loss(image: &Tensor, text: &Tensor, scale: &Tensor) -> Result<Tensor> {
    let b = image.dim(0)?;
    let logits = image.matmul(&text.t()?)?.broadcast_mul(scale)?;
    let targets = Tensor::arange(0u32, b as u32, image.device())?;
    let i2t = cross_entropy(&logits, &targets)?;
    let t2i = cross_entropy(&logits.t()?.contiguous()?, &targets)?;
    Ok(((i2t + t2i)? / 2.0)?.to_dtype(DType::F32)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn unit_rows(rows: &[[f32; 3]]) -> Tensor {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        let t = Tensor::from_vec(flat, (rows.len(), 3), &Device::Cpu).unwrap();
        crate::encoder::l2_normalize(&t).unwrap()
    }

    #[test]
    fn matched_pairs_score_lower_than_shuffled_pairs() {
        let text = unit_rows(&[[1., 0., 0.], [0., 1., 0.], [0., 0., 1.]]);
        let matched = unit_rows(&[[0.9, 0.1, 0.], [0.1, 0.9, 0.], [0., 0.1, 0.9]]);
        let shuffled = unit_rows(&[[0.1, 0.9, 0.], [0., 0.1, 0.9], [0.9, 0.1, 0.]]);
        let scale = Tensor::new(10f32, &Device::Cpu).unwrap();
        let good = clip_loss(&matched, &text, &scale)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let bad = clip_loss(&shuffled, &text, &scale)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(good < 0.1, "matched loss {good}");
        assert!(bad > 5.0, "shuffled loss {bad}");
        // With every logit equal the loss is exactly ln(batch).
        let zero = Tensor::new(0f32, &Device::Cpu).unwrap();
        let flat = clip_loss(&matched, &text, &zero)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((flat - 3f32.ln()).abs() < 1e-5);
    }
}
