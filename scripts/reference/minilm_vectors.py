"""Reference vectors from Python sentence-transformers for all-MiniLM-L6-v2, loaded from the
same files Inkling uses (.deps/models/all-minilm-l6-v2). Reads one text per line on stdin and
prints a JSON list of 384-d vectors. Run by scripts/make-encoder-fixtures.sh in a throwaway venv."""
import json
import sys

from sentence_transformers import SentenceTransformer, models

model_dir = sys.argv[1]
word = models.Transformer(model_dir, max_seq_length=256)
pooling = models.Pooling(word.get_word_embedding_dimension(), pooling_mode="mean")
model = SentenceTransformer(modules=[word, pooling, models.Normalize()], device="cpu")
texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
vectors = model.encode(texts, batch_size=8, normalize_embeddings=True)
json.dump([[float(x) for x in row] for row in vectors], sys.stdout)
