//! The CLIP contrastive loss (Radford et al. 2021) with multi-positive targets: in a
//! batch of matched pairs, each image must pick out its own text among the batch's
//! texts, and each text its image; pairs whose titles say the same thing (a catalogue
//! often sells "Puma Men Black T-shirt" many times over) are positives too, sharing the
//! target mass, instead of negatives the loss would push apart.

use anyhow::Result;
use candle_core::{DType, Tensor, D};
use candle_nn::ops::log_softmax;

/// Row-stochastic targets from the frozen text vectors: pair j is a positive for pair i
/// when their titles' cosine similarity is at least `same_title` (always for j = i).
/// A threshold above 1 gives the identity, CLIP's one-positive targets.
pub fn multi_positive_targets(text: &Tensor, same_title: f64) -> Result<Tensor> {
    let b = text.dim(0)?;
    let sim = text.matmul(&text.t()?)?;
    let positive = sim.ge(same_title)?.to_dtype(DType::F32)?;
    let eye = Tensor::eye(b, DType::F32, text.device())?;
    let positive = positive.maximum(&eye)?;
    Ok(positive.broadcast_div(&positive.sum_keepdim(D::Minus1)?)?)
}

/// Soft targets from the frozen text vectors (knowledge distillation's, Hinton et al.
/// 2015, with the text tower as the teacher): row i is the softmax of title i's cosine
/// similarities to the batch's titles at `temperature`. Identical titles share the mass
/// as with [`multi_positive_targets`], and titles that name the same kind of product
/// (two different black belts) get a little of it instead of counting as negatives as
/// hard as a sock's: the tower learns the text tower's sense of which products are
/// alike, not only which photo is whose. The matrix of similarities is symmetric, so
/// row i also serves as title i's targets over the batch's images.
pub fn soft_targets(text: &Tensor, temperature: f64) -> Result<Tensor> {
    let sim = text.matmul(&text.t()?)?;
    Ok(candle_nn::ops::softmax_last_dim(
        &sim.affine(1.0 / temperature, 0.0)?,
    )?)
}

/// Targets for [`relation_loss`]: row i is the softmax of title i's similarities to the
/// batch's other titles at `temperature` (itself excluded), so product i's photo should
/// lie nearest the photos of the products whose titles are nearest its own.
pub fn relation_targets(text: &Tensor, temperature: f64) -> Result<Tensor> {
    let sim = text.matmul(&text.t()?)?.affine(1.0 / temperature, 0.0)?;
    Ok(candle_nn::ops::softmax_last_dim(
        &(sim + self_mask(text)?)?,
    )?)
}

/// A large negative on the diagonal: a row's softmax leaves out the pair itself.
fn self_mask(rows: &Tensor) -> Result<Tensor> {
    let b = rows.dim(0)?;
    Ok(Tensor::eye(b, DType::F32, rows.device())?.affine(-1e4, 0.0)?)
}

/// Relational distillation (Park et al. 2019, "Relational Knowledge Distillation") from
/// the text tower to the image tower: the soft cross-entropy between each photo's
/// similarities to the batch's other photos (`scale * image . image^T`, itself left out)
/// and [`relation_targets`]. The CLIP term only places each photo near its title;
/// nothing in it asks two skirts' photos to be near each other, which is what a photo
/// query needs. It costs one (B x B) product, no second pass through the tower.
pub fn relation_loss(image: &Tensor, scale: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let b = image.dim(0)? as f64;
    let logits = (image.matmul(&image.t()?)?.broadcast_mul(scale)? + self_mask(image)?)?;
    Ok((log_softmax(&logits, D::Minus1)? * targets)?
        .sum_all()?
        .affine(-1.0 / b, 0.0)?)
}

/// Invariance to framing as a regression, not a contrast: the mean of 1 - cosine
/// between each photo's warped view (`views`) and the photo's own vector (`anchor`),
/// which is held fixed (no gradient flows into it). The warped view learns to land where
/// the photo lands; nothing pushes one product's photo away from another's. The SLIP
/// term (`--consistency`) asks each view to pick out its own photo among the batch's,
/// which also pushes two alike skirts' photos apart, and measured so: it kept re-framed
/// photos' lists but found fewer products of the photo's kind (README, The built-in
/// model). Rows L2-normalised, as the tower gives them.
pub fn invariance_loss(views: &Tensor, anchor: &Tensor) -> Result<Tensor> {
    let cosine = (views * anchor.detach())?.sum(D::Minus1)?;
    Ok(cosine.mean_all()?.affine(-1.0, 1.0)?)
}

/// How many pairs each row of `targets` spreads its mass over, on average: the inverse
/// of the sum of squared target probabilities (k for k equal positives, 1 for CLIP's).
pub fn effective_positives(targets: &Tensor) -> Result<f64> {
    let rows = targets.dim(0)?;
    let per_row = targets.sqr()?.sum(D::Minus1)?.recip()?;
    Ok(per_row.sum_all()?.to_scalar::<f32>()? as f64 / rows.max(1) as f64)
}

/// Symmetric soft cross-entropy over `scale * image . text^T`, rows L2-normalised, row i
/// of each a matched pair; `targets` from [`multi_positive_targets`] or [`soft_targets`]
/// (both built from a symmetric similarity, so the text-to-image side uses the same rows).
pub fn clip_loss(
    image: &Tensor,
    text: &Tensor,
    scale: &Tensor,
    targets: &Tensor,
) -> Result<Tensor> {
    let b = image.dim(0)? as f64;
    let logits = image.matmul(&text.t()?)?.broadcast_mul(scale)?;
    let soft_ce = |logits: &Tensor| -> Result<Tensor> {
        Ok((log_softmax(logits, D::Minus1)? * targets)?
            .sum_all()?
            .affine(-1.0 / b, 0.0)?)
    };
    let i2t = soft_ce(&logits)?;
    let t2i = soft_ce(&logits.t()?.contiguous()?)?;
    Ok(((i2t + t2i)? / 2.0)?)
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

    fn scalar(t: Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn matched_pairs_score_lower_than_shuffled_pairs() {
        let text = unit_rows(&[[1., 0., 0.], [0., 1., 0.], [0., 0., 1.]]);
        let one = multi_positive_targets(&text, 2.0).unwrap();
        let matched = unit_rows(&[[0.9, 0.1, 0.], [0.1, 0.9, 0.], [0., 0.1, 0.9]]);
        let shuffled = unit_rows(&[[0.1, 0.9, 0.], [0., 0.1, 0.9], [0.9, 0.1, 0.]]);
        let scale = Tensor::new(10f32, &Device::Cpu).unwrap();
        let good = scalar(clip_loss(&matched, &text, &scale, &one).unwrap());
        let bad = scalar(clip_loss(&shuffled, &text, &scale, &one).unwrap());
        assert!(good < 0.1, "matched loss {good}");
        assert!(bad > 5.0, "shuffled loss {bad}");
        // With every logit equal the loss is exactly ln(batch).
        let zero = Tensor::new(0f32, &Device::Cpu).unwrap();
        let flat = scalar(clip_loss(&matched, &text, &zero, &one).unwrap());
        assert!((flat - 3f32.ln()).abs() < 1e-5);
    }

    /// Two pairs have near-identical titles (cosine 0.95): with one-positive targets the
    /// loss pushes their images apart; with multi-positive targets an image that sits
    /// between both copies of its title is at the loss's minimum.
    #[test]
    fn near_duplicate_titles_are_positives_not_negatives() {
        let text = unit_rows(&[[1., 0., 0.], [1., 0.33, 0.], [0., 0., 1.]]);
        let multi = multi_positive_targets(&text, 0.9).unwrap();
        let got = multi.to_vec2::<f32>().unwrap();
        assert_eq!(got[0], [0.5, 0.5, 0.0]);
        assert_eq!(got[1], [0.5, 0.5, 0.0]);
        assert_eq!(got[2], [0.0, 0.0, 1.0]);
        let one = multi_positive_targets(&text, 2.0).unwrap();
        assert_eq!(one.to_vec2::<f32>().unwrap()[0], [1.0, 0.0, 0.0]);

        // Images 0 and 1 both halfway between the two titles.
        let image = unit_rows(&[[2., 0.33, 0.], [2., 0.33, 0.], [0., 0., 1.]]);
        let scale = Tensor::new(20f32, &Device::Cpu).unwrap();
        let loss_and_gradient = |targets: &Tensor| {
            let var = candle_core::Var::from_tensor(&image).unwrap();
            let loss = clip_loss(var.as_tensor(), &text, &scale, targets).unwrap();
            let grads = loss.backward().unwrap();
            let g = grads.get(&var).unwrap().to_vec2::<f32>().unwrap();
            (scalar(loss), g[0].iter().map(|v| v * v).sum::<f32>().sqrt())
        };
        let (_, hard) = loss_and_gradient(&one);
        let (soft_loss, soft) = loss_and_gradient(&multi);
        assert!(hard > 0.5, "one-positive gradient {hard}");
        assert!(
            soft < 0.05 * hard,
            "multi-positive gradient {soft} vs {hard}"
        );
        // The minimum: the targets' own entropy, ln 2 in 4 of the 6 rows.
        let floor = 2.0 * 2f32.ln() / 3.0;
        assert!((soft_loss - floor).abs() < 0.01, "{soft_loss} vs {floor}");
    }

    /// Soft targets rank the batch's titles by similarity: a title's own pair and an
    /// identical title share the most mass, a title naming the same kind of product gets
    /// some, an unrelated one next to none; a cooler temperature concentrates the mass.
    /// The effective positives count k equal positives as k.
    #[test]
    fn soft_targets_follow_title_similarity() {
        // Two identical titles, one close to them (cosine 0.8), one unrelated.
        let text = unit_rows(&[[1., 0., 0.], [1., 0., 0.], [0.8, 0.6, 0.], [0., 0., 1.]]);
        let warm = soft_targets(&text, 0.1).unwrap().to_vec2::<f32>().unwrap();
        for row in &warm {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        let r = &warm[0];
        assert!((r[0] - r[1]).abs() < 1e-6, "{r:?}");
        assert!(r[1] > r[2] && r[2] > 10.0 * r[3], "{r:?}");
        // exp(-0.2 / 0.1): the close title's mass relative to an identical one's.
        assert!((r[2] / r[0] - (-2f32).exp()).abs() < 1e-4, "{r:?}");
        let cool = soft_targets(&text, 0.02).unwrap().to_vec2::<f32>().unwrap();
        assert!(cool[0][2] < 0.01 * warm[0][2], "{:?} vs {r:?}", cool[0]);

        let warm_k = effective_positives(&soft_targets(&text, 0.1).unwrap()).unwrap();
        let cool_k = effective_positives(&soft_targets(&text, 0.02).unwrap()).unwrap();
        // Rows 0 and 1 spread over two identical titles, 2 mostly on itself, 3 alone.
        assert!(cool_k > 1.4 && cool_k < 1.6, "{cool_k}");
        assert!(warm_k > cool_k, "{warm_k} vs {cool_k}");
        let multi = multi_positive_targets(&text, 0.99).unwrap();
        let k = effective_positives(&multi).unwrap();
        assert!((k - 1.5).abs() < 1e-6, "{k}");
    }

    /// The invariance term is 0 when each view lies on its photo, grows as they part,
    /// and moves only the views: the photos' own vectors get no gradient.
    #[test]
    fn invariance_moves_views_toward_their_fixed_photos() {
        let photos = unit_rows(&[[1., 0., 0.], [0., 1., 0.]]);
        let same = scalar(invariance_loss(&photos, &photos).unwrap());
        assert!(same.abs() < 1e-6, "{same}");
        // Views at 90 degrees from their photos: 1 - 0 each.
        let apart = unit_rows(&[[0., 0., 1.], [0., 0., 1.]]);
        let far = scalar(invariance_loss(&apart, &photos).unwrap());
        assert!((far - 1.0).abs() < 1e-6, "{far}");
        let views =
            candle_core::Var::from_tensor(&unit_rows(&[[0.8, 0.6, 0.], [0., 0.6, 0.8]])).unwrap();
        let anchor = candle_core::Var::from_tensor(&photos).unwrap();
        let loss = invariance_loss(views.as_tensor(), anchor.as_tensor()).unwrap();
        let grads = loss.backward().unwrap();
        assert!(
            grads.get(&anchor).is_none(),
            "the photos' vectors are held fixed"
        );
        let g = grads.get(&views).unwrap().to_vec2::<f32>().unwrap();
        // Descending the gradient moves view 0 toward photo 0 ([1, 0, 0]).
        assert!(g[0][0] < 0.0 && g[1][1] < 0.0, "{g:?}");
    }

    /// The relation term leaves each pair itself out of its targets, and scores photos
    /// that lie as their titles lie (two skirts together, a sock apart) lower than photos
    /// that pair a skirt with the sock.
    #[test]
    fn relation_loss_wants_photos_arranged_as_their_titles() {
        // Two skirts' titles (cosine 0.8) and a sock's.
        let text = unit_rows(&[[1., 0., 0.], [0.8, 0.6, 0.], [0., 0., 1.]]);
        let targets = relation_targets(&text, 0.1).unwrap();
        let rows = targets.to_vec2::<f32>().unwrap();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row[i], 0.0, "row {i}: {row:?}");
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
        assert!(rows[0][1] > 0.99 && rows[1][0] > 0.99, "{rows:?}");
        let scale = Tensor::new(10f32, &Device::Cpu).unwrap();
        let as_titles = unit_rows(&[[1., 0.1, 0.], [0.9, 0.3, 0.], [0., 0.1, 1.]]);
        let skirt_with_sock = unit_rows(&[[1., 0.1, 0.], [0., 0.3, 0.9], [0.9, 0.1, 0.]]);
        let good = scalar(relation_loss(&as_titles, &scale, &targets).unwrap());
        let bad = scalar(relation_loss(&skirt_with_sock, &scale, &targets).unwrap());
        assert!(good.is_finite() && good < 0.5 * bad, "{good} vs {bad}");
    }
}
