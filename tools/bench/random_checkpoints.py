#!/usr/bin/env python3
"""Random-weight checkpoints of real model sizes (SigLIP 2 through transformers, MobileCLIP
through open_clip), for speed figures (`cargo bench --bench
families`): the architecture and dimensions of the published models, written by transformers,
with no download. Weights are random, so only speed means anything.

    /tmp/refenv/bin/python tools/bench/random_checkpoints.py OUT_DIR
"""

import os
import shutil
import sys

import open_clip
import torch
from open_clip.push_to_hf_hub import save_config_for_hf
from safetensors.torch import save_file
from transformers import SiglipConfig, SiglipModel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# google/siglip2-base-patch16-224 and google/siglip2-so400m-patch14-224 (config.json).
SIGLIP = {
    "siglip2-base-patch16-224": dict(
        text=dict(vocab_size=256000, hidden_size=768, intermediate_size=3072,
                  num_hidden_layers=12, num_attention_heads=12),
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, image_size=224, patch_size=16),
    ),
    "siglip2-so400m-patch14-224": dict(
        text=dict(vocab_size=256000, hidden_size=1152, intermediate_size=4304,
                  num_hidden_layers=27, num_attention_heads=16),
        vision=dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27,
                    num_attention_heads=16, image_size=224, patch_size=14),
    ),
}


def main(out):
    torch.manual_seed(0)
    fixture = os.path.join(ROOT, "tests", "fixtures", "tiny-siglip")
    for name, dims in SIGLIP.items():
        if len(sys.argv) > 2 and name not in sys.argv[2:]:
            continue
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        config = SiglipConfig(text_config=dims["text"], vision_config=dims["vision"])
        SiglipModel(config).save_pretrained(d, safe_serialization=True)
        for f in ["tokenizer.json", "tokenizer_config.json", "preprocessor_config.json"]:
            shutil.copy(os.path.join(fixture, f), d)
        # The published preprocessing size, not the fixture's.
        pre = os.path.join(d, "preprocessor_config.json")
        text = open(pre).read().replace('"height": 64', '"height": 224')
        open(pre, "w").write(text.replace('"width": 64', '"width": 224'))
        print("wrote", d)
    # MobileCLIP-S1 in OpenCLIP's layout: open_clip's own configuration, random weights.
    for name in ["MobileCLIP-S1"]:
        if len(sys.argv) > 2 and name not in sys.argv[2:]:
            continue
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        model = open_clip.create_model(name, pretrained=None)
        state = {
            k: v.contiguous()
            for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")
        }
        save_file(state, os.path.join(d, "open_clip_model.safetensors"))
        config = open_clip.get_model_config(name)
        save_config_for_hf(model, __import__("pathlib").Path(d) / "open_clip_config.json", config)
        print("wrote", d)


if __name__ == "__main__":
    main(sys.argv[1])
