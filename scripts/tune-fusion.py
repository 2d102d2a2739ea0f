#!/usr/bin/env python3
"""Chooses the hybrid-search fusion weight on a validation split, from two TREC runs written
by `inkling eval search --run` (one --mode lexical, one --mode vector) and the qrels.

Each run's scores are already min-max normalised per query (that is what a single-list
search returns), so the fused score of a document is `lexical + weight * vector`, with 0
for a list that does not hold it: the same convex fusion the ranker applies. Queries are
split by a hash of their id: half choose the weight (validation), the other half report it
(test). Prints one row per weight and the chosen one.
Usage: scripts/tune-fusion.py LEXICAL_RUN VECTOR_RUN QRELS
"""
import collections
import hashlib
import math
import sys


def read_run(path):
    run = collections.defaultdict(dict)
    with open(path) as f:
        for line in f:
            qid, _, doc, _rank, score, _tag = line.split()
            run[qid][doc] = float(score)
    return run


def read_qrels(path):
    qrels = collections.defaultdict(dict)
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                try:
                    qrels[parts[0]][parts[2]] = float(parts[3])
                except ValueError:
                    pass
    return qrels


def ndcg10(ranked, judged):
    dcg = sum(judged.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def fused_ndcg(queries, lexical, vector, qrels, weight):
    total = 0.0
    for qid in queries:
        scores = collections.Counter()
        for doc, score in lexical.get(qid, {}).items():
            scores[doc] += score
        for doc, score in vector.get(qid, {}).items():
            scores[doc] += weight * score
        ranked = [doc for doc, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]
        total += ndcg10(ranked, qrels[qid])
    return total / max(len(queries), 1)


lexical, vector, qrels = read_run(sys.argv[1]), read_run(sys.argv[2]), read_qrels(sys.argv[3])
queries = sorted(q for q in qrels if q in lexical or q in vector)
is_validation = lambda q: hashlib.sha1(q.encode()).digest()[0] % 2 == 0
validation = [q for q in queries if is_validation(q)]
test = [q for q in queries if not is_validation(q)]
print(f"{len(validation)} validation queries, {len(test)} test queries")
print("| weight | validation nDCG@10 | test nDCG@10 | all nDCG@10 |")
print("|---:|---:|---:|---:|")
best = None
for weight in [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0]:
    v = fused_ndcg(validation, lexical, vector, qrels, weight)
    t = fused_ndcg(test, lexical, vector, qrels, weight)
    a = fused_ndcg(queries, lexical, vector, qrels, weight)
    print(f"| {weight} | {v:.4f} | {t:.4f} | {a:.4f} |")
    if best is None or v > best[1]:
        best = (weight, v, t)
print(f"chosen on validation: weight {best[0]} (validation {best[1]:.4f}, test {best[2]:.4f})")
