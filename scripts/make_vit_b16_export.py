"""A random-weight ViT-B/16 vision tower (the size of jina-clip-v1's image tower: 12
layers, width 768, 224x224 input, 16x16 patches) exported to ONNX, for `vitrina bench
--onnx-dir`. Only the shape matters for speed, so no weights need downloading.

    /tmp/peers/bin/python scripts/make_vit_b16_export.py /tmp/vit-b16
"""
import json
import pathlib
import sys

import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection


def main() -> None:
    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/vit-b16")
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                              num_attention_heads=12, image_size=224, patch_size=16, projection_dim=768)
    model = CLIPVisionModelWithProjection(config).eval()

    class Tower(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            return self.m(pixel_values=pixel_values).image_embeds

    torch.onnx.export(Tower(model), (torch.zeros(1, 3, 224, 224),), str(out / "onnx/vision_model.onnx"),
                      input_names=["pixel_values"], output_names=["image_embeds"],
                      dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}},
                      opset_version=17, dynamo=False)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": 224, "resample": 3, "do_center_crop": True, "crop_size": 224,
        "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711]}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
