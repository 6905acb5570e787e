//! Where training runs: the CPU (the default, and the only place whose runs are
//! bit-for-bit reproducible) or an NVIDIA GPU through candle's CUDA backend, which the
//! `cuda` cargo feature builds in. Picking the device is apart from the recipe: the same
//! `TrainConfig` trains on either, and the card records which one ran.

use anyhow::{bail, Context, Result};
use candle_core::{Device, DeviceLocation};

/// The device `name` names: `cpu`, `cuda` (the first GPU) or `cuda:N`.
pub fn training_device(name: &str) -> Result<Device> {
    let gpu = match name.trim() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => bail!("--device must be cpu, cuda or cuda:N (N a GPU's number), not {name:?}"),
        },
    };
    if !cfg!(feature = "cuda") {
        bail!(
            "--device {name}: this vitrina was built without CUDA; rebuild it with \
             `cargo build --release --features cuda` (needs the CUDA toolkit: README, \
             Training on a GPU)"
        );
    }
    Device::new_cuda(gpu).with_context(|| format!("--device {name}: no usable CUDA GPU {gpu}"))
}

/// How the card and the bench name `device`: `cpu`, or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        DeviceLocation::Cpu => "cpu".to_string(),
        DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_named_and_other_names_are_refused_by_name() {
        assert!(training_device("cpu").unwrap().is_cpu());
        assert_eq!(device_name(&training_device("cpu").unwrap()), "cpu");
        for bad in ["gpu", "cuda:x", "cuda:-1", ""] {
            let err = format!("{:#}", training_device(bad).unwrap_err());
            assert!(
                err.contains("--device must be cpu, cuda or cuda:N"),
                "{err}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_build_it() {
        let err = format!("{:#}", training_device("cuda:0").unwrap_err());
        assert!(err.contains("--features cuda"), "{err}");
    }
}
