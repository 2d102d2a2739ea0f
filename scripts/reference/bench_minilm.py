"""Python sentence-transformers throughput for all-MiniLM-L6-v2 on the texts Inkling's encoder
benchmark uses, for a side-by-side ratio. Reads texts (one per line) from argv[2], batch sizes
from argv[3] (comma-separated); prints one JSON object {batch size: texts per second}."""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer, models

model_dir, texts_path, batch_sizes = sys.argv[1], sys.argv[2], sys.argv[3]
word = models.Transformer(model_dir, max_seq_length=256)
pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
texts = [line.rstrip("\n") for line in open(texts_path, encoding="utf-8") if line.strip()]
model.encode(texts[:64], batch_size=32)  # warm-up
results = {}
with torch.inference_mode():
    for batch in (int(b) for b in batch_sizes.split(",")):
        best = 0.0
        for _ in range(3):
            started = time.perf_counter()
            model.encode(texts, batch_size=batch, normalize_embeddings=True)
            best = max(best, len(texts) / (time.perf_counter() - started))
        results[batch] = best
results["threads"] = torch.get_num_threads()
json.dump(results, sys.stdout)
