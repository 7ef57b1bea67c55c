"""PyTorch's side of the model-alone comparison (issue 13): transformers' CLIPModel at
ViT-B/32's shape (random weights: speed does not depend on their values), f32, on the CPU with
as many threads as cores, the same measurements as `cargo bench -p clipsearch --bench families`:
the image tower at batch 8 (and 1 and 32), one text query's latency (10 tokens, unpadded, as
clipsearch encodes a query; and padded to 77, as transformers' pipelines and rclip do).

    /tmp/refenv/bin/python tools/bench/pytorch_towers.py [--gelu] [--bf16] [--int8] [--batches 8,32]

Prints medians; run it alternating with the Rust benchmark to compare side by side.
"""
import argparse
import contextlib
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
    ap.add_argument("--batches", default="1,8,32", help="image batch sizes, comma-separated")
    ap.add_argument("--bf16", action="store_true",
                    help="also the image tower under bf16 autocast (oneDNN's AMX tiles where the CPU has them)")
    ap.add_argument("--int8", action="store_true",
                    help="also the image tower with dynamic int8 quantization of its linear layers")
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
        variants = [("f32", model, contextlib.nullcontext)]
        if args.bf16:
            variants.append(("bf16 autocast", model,
                             lambda: torch.autocast("cpu", dtype=torch.bfloat16)))
        if args.int8:
            int8 = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            variants.append(("dynamic int8", int8, contextlib.nullcontext))
        for batch in (int(b) for b in args.batches.split(",")):
            pixels = torch.randn(batch, 3, 224, 224)
            for name, m, context in variants:
                def run():
                    with context():
                        m.get_image_features(pixel_values=pixels)
                s = median_seconds(run, repeats=5 if batch >= 32 else 10)
                print(f"image tower {name}, batch {batch}: {batch / s:.2f} images/s ({s * 1000:.1f} ms)")
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
