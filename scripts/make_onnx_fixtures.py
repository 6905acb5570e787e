"""Tiny random-weight CLIP-style ONNX models laid out like jina-clip-v1, for the tests of
vitrina's ONNX backend (no machine here reaches the model hub, so the real model cannot
be fetched; these have the same file layout, input/output names and tokenizer format).

Writes tests/fixtures/tiny-clip/:
  config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json,
  onnx/text_model.onnx   inputs input_ids, attention_mask (int64)  -> text_embeds
  onnx/vision_model.onnx input  pixel_values (float32, N x 3 x H x W) -> image_embeds
  images/*.png           fixed test images
  reference.json         token ids, preprocessed pixels and onnxruntime outputs
and tests/fixtures/tiny-clip-bad/ (a text model whose input has another name).

    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install -r scripts/requirements-peers.txt
    /tmp/peers/bin/python scripts/make_onnx_fixtures.py
"""
import json
import pathlib
import shutil

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

OUT = pathlib.Path("tests/fixtures/tiny-clip")
BAD = pathlib.Path("tests/fixtures/tiny-clip-bad")
HIDDEN, PROJ, IMAGE, PATCH = 32, 16, 32, 8
MEAN = [0.48145466, 0.4578275, 0.40821073]  # CLIP's, as in jina-clip-v1's preprocessor config
STD = [0.26862954, 0.26130258, 0.27577711]
WORDS = ("red blue black white green pink grey navy leather cotton silk denim dress shirt jeans "
         "belt watch shoes bag men women party casual formal sports running printed striped "
         "solid short long sleeve t ##s ##ed ##ing a the and with for of").split()

TEXTS = [
    "red party dress",
    "Black Leather Belt for Men",
    "blue denim jeans with pockets",
    "a",
    "unknownword zebra",
    "navy striped cotton shirt " * 12,  # long: exercises truncation at model_max_length
]


def tokenizer() -> Tokenizer:
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.decoder = decoders.WordPiece()
    return tok


class Layer(torch.nn.Module):
    """A pre-norm transformer layer from plain ops (traces with dynamic shapes)."""

    def __init__(self):
        super().__init__()
        self.ln1, self.ln2 = torch.nn.LayerNorm(HIDDEN), torch.nn.LayerNorm(HIDDEN)
        self.qkv, self.out = torch.nn.Linear(HIDDEN, 3 * HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN)
        self.ff = torch.nn.Sequential(torch.nn.Linear(HIDDEN, 64), torch.nn.GELU(), torch.nn.Linear(64, HIDDEN))

    def forward(self, x, mask=None):
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        att = q @ k.transpose(1, 2) / HIDDEN ** 0.5
        if mask is not None:
            att = att + (1.0 - mask[:, None, :].to(att.dtype)) * -1e9
        x = x + self.out(att.softmax(-1) @ v)
        return x + self.ff(self.ln2(x))


class TextTower(torch.nn.Module):
    """Embedding + one transformer layer + masked mean + projection, like a small JinaBERT."""

    def __init__(self, vocab: int, max_len: int):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, HIDDEN)
        self.pos = torch.nn.Embedding(max_len, HIDDEN)
        self.layer = Layer()
        self.proj = torch.nn.Linear(HIDDEN, PROJ, bias=False)

    def forward(self, input_ids, attention_mask):
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.tok(input_ids) + self.pos(positions)
        x = self.layer(x, attention_mask)
        mask = attention_mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * mask).sum(1) / mask.sum(1)
        return self.proj(pooled)


class VisionTower(torch.nn.Module):
    """Patch embedding + one transformer layer + mean + projection, like a small ViT."""

    def __init__(self):
        super().__init__()
        self.patch = torch.nn.Conv2d(3, HIDDEN, PATCH, PATCH)
        self.pos = torch.nn.Parameter(torch.randn(1, (IMAGE // PATCH) ** 2, HIDDEN) * 0.02)
        self.layer = Layer()
        self.proj = torch.nn.Linear(HIDDEN, PROJ, bias=False)

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2) + self.pos
        return self.proj(self.layer(x).mean(1))


def export(model, args, path, inputs, output, axes):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(model.eval(), args, str(path), input_names=inputs, output_names=[output],
                      dynamic_axes=axes, opset_version=17, dynamo=False)


def preprocess(path: pathlib.Path) -> np.ndarray:
    """CLIPImageProcessor's steps: shortest edge -> size (bicubic), centre crop, scale, normalise."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    scale = IMAGE / min(w, h)
    if (w, h) != (IMAGE, IMAGE):
        img = img.resize((max(IMAGE, round(w * scale)), max(IMAGE, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - IMAGE) // 2, (h - IMAGE) // 2
    img = img.crop((left, top, left + IMAGE, top + IMAGE))
    x = np.asarray(img, dtype=np.float32) / 255.0
    x = (x - np.array(MEAN, dtype=np.float32)) / np.array(STD, dtype=np.float32)
    return x.transpose(2, 0, 1)


def main() -> None:
    torch.manual_seed(0)
    shutil.rmtree(OUT, ignore_errors=True)
    shutil.rmtree(BAD, ignore_errors=True)
    (OUT / "images").mkdir(parents=True)
    tok = tokenizer()
    tok.save(str(OUT / "tokenizer.json"))
    max_len = 24
    (OUT / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": max_len, "do_lower_case": True, "tokenizer_class": "BertTokenizer"}, indent=1))
    (OUT / "config.json").write_text(json.dumps({
        "architectures": ["JinaCLIPModel"], "model_type": "jina_clip", "projection_dim": PROJ,
        "text_config": {"embed_dim": HIDDEN}, "vision_config": {"image_size": IMAGE, "patch_size": PATCH},
        "_comment": "tiny random-weight stand-in made by scripts/make_onnx_fixtures.py"}, indent=1))
    (OUT / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": IMAGE, "resample": 3, "do_center_crop": True, "crop_size": IMAGE,
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": MEAN, "image_std": STD}, indent=1))

    text = TextTower(len(tok.get_vocab()), max_len)
    ids = torch.tensor([[2, 5, 6, 3]])
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"}, "text_embeds": {0: "batch"}}
    export(text, (ids, torch.ones_like(ids)), OUT / "onnx/text_model.onnx", ["input_ids", "attention_mask"], "text_embeds", axes)
    vision = VisionTower()
    pix = torch.zeros(1, 3, IMAGE, IMAGE)
    export(vision, (pix,), OUT / "onnx/vision_model.onnx", ["pixel_values"], "image_embeds",
           {"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}})
    # The same text model with its input renamed: the loader must say what it expected.
    bad_axes = {"tokens": {0: "batch", 1: "seq"}, "mask": {0: "batch", 1: "seq"}, "text_embeds": {0: "batch"}}
    export(text, (ids, torch.ones_like(ids)), BAD / "onnx/text_model.onnx", ["tokens", "mask"], "text_embeds", bad_axes)
    for name in ["tokenizer.json", "tokenizer_config.json", "config.json", "preprocessor_config.json"]:
        shutil.copy(OUT / name, BAD / name)
    shutil.copy(OUT / "onnx/vision_model.onnx", BAD / "onnx/vision_model.onnx")

    # Images: one at the model's size (preprocessing is exact), one that needs resizing.
    rng = np.random.default_rng(0)
    images = {"exact.png": rng.integers(0, 256, (IMAGE, IMAGE, 3), dtype=np.uint8),
              "wide.png": rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)}
    for name, arr in images.items():
        Image.fromarray(arr).save(OUT / "images" / name)

    tok.enable_truncation(max_len)
    encodings = [tok.encode(t) for t in TEXTS]
    text_sess = ort.InferenceSession(str(OUT / "onnx/text_model.onnx"))
    vision_sess = ort.InferenceSession(str(OUT / "onnx/vision_model.onnx"))
    text_out = []
    for e in encodings:  # one at a time: no padding in the reference
        feed = {"input_ids": np.array([e.ids], dtype=np.int64), "attention_mask": np.array([e.attention_mask], dtype=np.int64)}
        text_out.append(text_sess.run(["text_embeds"], feed)[0][0].tolist())
    pixels = {name: preprocess(OUT / "images" / name) for name in images}
    image_out = {name: vision_sess.run(["image_embeds"], {"pixel_values": p[None]})[0][0].tolist() for name, p in pixels.items()}
    (OUT / "reference.json").write_text(json.dumps({
        "texts": TEXTS,
        "input_ids": [e.ids for e in encodings],
        "text_embeds": text_out,
        "images": list(images),
        "pixel_values": {k: v.flatten().tolist() for k, v in pixels.items()},
        "image_embeds": image_out,
        "produced_by": f"scripts/make_onnx_fixtures.py (torch {torch.__version__}, onnxruntime {ort.__version__})",
    }) + "\n")
    print(f"wrote {OUT} and {BAD}")


if __name__ == "__main__":
    main()
