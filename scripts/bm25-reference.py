#!/usr/bin/env python3
"""Plain character-BM25 reference for Chinese evaluation sets: the baseline every figure is
compared against, measured in the same run on the same files.

Usage: scripts/bm25-reference.py CORPUS QUERIES QRELS [--tokens chars|chars+bigrams|both]
                                 [--k 10] [--by-kind]

Files: CORPUS `id<TAB>title`, QUERIES `qid<TAB>query`, QRELS `qid<TAB>0<TAB>id<TAB>grade`
(the format of `inkling eval search` and of scripts/make-zh-eval.py).

Tokens (text first put through Unicode NFKC and lower-cased, no stemming, no stop words):
  * chars: every Han character is one token; every run of ASCII letters and digits is one
    whole token ("iPhone12" -> "iphone12"); everything else (punctuation, spaces) separates.
  * chars+bigrams: the same tokens plus every pair of adjacent Han characters inside a run of
    Han characters, all in one field (a document's length counts both kinds).
Scoring: BM25 with k1 = 1.2, b = 0.75 and the Lucene / bm25s idf
ln(1 + (N - df + 0.5) / (df + 0.5)); a document's score is the sum over the query's distinct
tokens of idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avglen)). Every query is run over
the whole corpus; documents sharing no token with it are not retrieved; ties go to the
document earlier in the corpus file.
Metrics (mean over all queries of QUERIES that have a judgement of grade >= 1):
  * MRR@k: 1 / rank of the first document of grade >= 1 within the top k, else 0;
  * nDCG@k: DCG = sum of grade / log2(rank + 1) over the top k (unjudged = 0), divided by the
    DCG of the qrels' grades in decreasing order;
  * Recall@100: share of the documents of grade >= 1 found in the top 100.
With --by-kind, one more row per query kind (the qid up to its first '-', as written by
scripts/make-zh-eval.py). Pure Python; a few seconds for ~5k documents and ~600 queries.
"""
import argparse
import collections
import math
import re
import time
import unicodedata

K1, B = 1.2, 0.75
TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+")
HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def tokens(text, bigrams):
    out = []
    for run in TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if HAN.match(run):
            out.extend(run)
            if bigrams:
                out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out


def read_tsv(path, columns):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                yield line.split("\t", columns - 1)


class BM25:
    def __init__(self, docs, bigrams):
        self.bigrams = bigrams
        self.postings = collections.defaultdict(list)  # token -> [(doc index, tf)]
        lengths = []
        for number, text in enumerate(docs):
            toks = tokens(text, bigrams)
            lengths.append(len(toks))
            for tok, tf in collections.Counter(toks).items():
                self.postings[tok].append((number, tf))
        n = len(docs)
        avg = sum(lengths) / max(1, n)
        self.norm = [K1 * (1 - B + B * length / avg) for length in lengths]
        self.idf = {tok: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5))
                    for tok, p in self.postings.items()}

    def search(self, query, k):
        scores = collections.defaultdict(float)
        for tok in set(tokens(query, self.bigrams)):
            idf = self.idf.get(tok)
            if idf is None:
                continue
            for doc, tf in self.postings[tok]:
                scores[doc] += idf * tf * (K1 + 1) / (tf + self.norm[doc])
        return sorted(scores, key=lambda d: (-scores[d], d))[:k]


def evaluate(index, ids, queries, qrels, k, kinds):
    sums = collections.defaultdict(lambda: [0, 0.0, 0.0, 0.0])  # n, mrr, ndcg, recall
    for qid, text in queries:
        judged = qrels.get(qid)
        if not judged or max(judged.values()) < 1:
            continue
        ranked = [ids[d] for d in index.search(text, max(k, 100))]
        mrr = next((1 / (r + 1) for r, d in enumerate(ranked[:k]) if judged.get(d, 0) >= 1), 0.0)
        dcg = sum(judged.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranked[:k]))
        ideal = sorted(judged.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
        relevant = {d for d, g in judged.items() if g >= 1}
        recall = len(relevant.intersection(ranked[:100])) / len(relevant)
        groups = ["all"] + ([qid.split("-")[0]] if kinds else [])
        for group in groups:
            s = sums[group]
            s[0] += 1
            s[1] += mrr
            s[2] += dcg / idcg
            s[3] += recall
    return sums


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus")
    parser.add_argument("queries")
    parser.add_argument("qrels")
    parser.add_argument("--tokens", choices=["chars", "chars+bigrams", "both"], default="both")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--by-kind", action="store_true", help="one more row per query kind")
    args = parser.parse_args()

    corpus = [(row[0], row[1] if len(row) > 1 else "") for row in read_tsv(args.corpus, 2)]
    ids = [doc for doc, _ in corpus]
    queries = [(row[0], row[1] if len(row) > 1 else "") for row in read_tsv(args.queries, 2)]
    qrels = collections.defaultdict(dict)
    for qid, _, doc, grade in read_tsv(args.qrels, 4):
        qrels[qid][doc] = int(grade)

    modes = ["chars", "chars+bigrams"] if args.tokens == "both" else [args.tokens]
    k = args.k
    print(f"{len(corpus)} docs, {len(queries)} queries; BM25 k1={K1} b={B}")
    print(f"| tokens | queries | kind | MRR@{k} | nDCG@{k} | Recall@100 | seconds |")
    print("|---|---|---|---|---|---|---|")
    for mode in modes:
        start = time.perf_counter()
        index = BM25([title for _, title in corpus], bigrams=(mode == "chars+bigrams"))
        sums = evaluate(index, ids, queries, qrels, k, args.by_kind)
        seconds = time.perf_counter() - start
        for group in ["all"] + sorted(g for g in sums if g != "all"):
            n, mrr, ndcg, recall = sums[group]
            print(f"| {mode} | {n} | {group} | {mrr / n:.3f} | {ndcg / n:.3f} | {recall / n:.3f} | "
                  f"{seconds:.1f} |" if group == "all" else
                  f"| {mode} | {n} | {group} | {mrr / n:.3f} | {ndcg / n:.3f} | {recall / n:.3f} | |")


if __name__ == "__main__":
    main()
