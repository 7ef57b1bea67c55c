"""PyTorch's side of the model-alone comparison (issue 13): transformers' CLIPModel at
ViT-B/32's shape (random weights: speed does not depend on their values), f32, on the CPU with
as many threads as cores, the same measurements as `cargo bench -p clipsearch --bench families`:
the image tower at batch 8 (and 1 and 32), one text query's latency (10 tokens, unpadded, as
clipsearch encodes a query; and padded to 77, as transformers' pipelines and rclip do).

    /tmp/refenv/bin/python tools/bench/pytorch_towers.py [--gelu]

Prints medians; run it alternating with the Rust benchmark to compare side by side.
"""
import argparse
import os
import statistics
import time

import torch
from transformers import CLIPConfig, CLIPModel


def median_seconds(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gelu", action="store_true", help="exact GELU (OpenCLIP's) instead of quick-GELU")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    act = "gelu" if args.gelu else "quick_gelu"
    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                         num_hidden_layers=12, hidden_act=act),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                           num_hidden_layers=12, patch_size=32, image_size=224, hidden_act=act),
        projection_dim=512,
    )
    model = CLIPModel(config).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"oneDNN {torch.backends.mkldnn.is_available()}, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, activation {act}")
    with torch.inference_mode():
        for batch in (1, 8, 32):
            pixels = torch.randn(batch, 3, 224, 224)
            s = median_seconds(lambda: model.get_image_features(pixel_values=pixels),
                               repeats=5 if batch == 32 else 10)
            print(f"image tower f32, batch {batch}: {batch / s:.2f} images/s ({s * 1000:.1f} ms)")
        # "a photo of a dog on the beach": 10 tokens with start and end, the engine bench's query.
        ids = torch.tensor([[49406, 320, 1125, 539, 320, 1929, 525, 518, 2117, 49407]])
        s = median_seconds(lambda: model.get_text_features(input_ids=ids), repeats=30)
        print(f"one text query (10 tokens): {s * 1000:.2f} ms")
        padded = torch.cat([ids, torch.zeros(1, 67, dtype=torch.long)], dim=1)
        mask = (padded != 0).long()
        mask[0, :10] = 1
        s = median_seconds(lambda: model.get_text_features(input_ids=padded, attention_mask=mask),
                           repeats=30)
        print(f"one text query (padded to 77): {s * 1000:.2f} ms")


if __name__ == "__main__":
    main()
