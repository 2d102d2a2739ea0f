#!/usr/bin/env python3
"""Builds a small Chinese search evaluation from ../shared/data/openbg-zh (research use: the
output goes to a temporary folder, never into the repository).

Writes corpus.tsv (item id, title), queries.tsv and qrels.tsv (grade 1 = relevant) to the
folder given as the first argument. Queries are of two kinds:
  * category queries: every fine category with at least 8 items, written as a shopper
    would type it ("手机保护套/壳" -> "手机保护套 壳"); relevant = the items of that category;
  * hand-written queries, each with a rule over category, brand and title deciding relevance.
Usage: scripts/make-openbg-eval.py OUT_DIR [openbg_items_zh.tsv]
"""
import collections
import os
import sys

out = sys.argv[1]
source = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/openbg-zh/openbg_items_zh.tsv"
rows = []
with open(source, encoding="utf-8") as f:
    next(f)
    for number, line in enumerate(f):
        title, brand, coarse, fine, _attributes = line.rstrip("\n").split("\t")
        rows.append((f"ob{number}", title, brand, coarse, fine))

def title_has(*words):
    return lambda r: any(w.lower() in r[1].lower() for w in words)

def fine_is(*names):
    return lambda r: r[4] in names

def both(a, b):
    return lambda r: a(r) and b(r)

hand_written = [
    ("苹果手机", both(fine_is("手机"), title_has("apple", "iphone", "苹果"))),
    ("iPhone 手机壳", both(fine_is("手机保护套/壳"), title_has("iphone", "苹果"))),
    ("华为手机壳", both(fine_is("手机保护套/壳"), title_has("华为", "huawei"))),
    ("游戏耳机", fine_is("游戏电竞头戴耳机")),
    ("保湿面膜", both(fine_is("贴片面膜"), title_has("保湿", "补水"))),
    ("男士休闲鞋", both(fine_is("休闲皮鞋", "休闲板鞋"), title_has("男"))),
    ("柳州螺蛳粉", both(fine_is("螺蛳粉"), title_has("柳州"))),
    ("速溶咖啡粉", fine_is("速溶咖啡")),
    ("厨房收纳架", fine_is("厨房置物架/角架")),
    ("修复干枯发膜", both(fine_is("洗发水", "护发素", "发膜"), title_has("发膜"))),
]

by_fine = collections.defaultdict(list)
for r in rows:
    by_fine[r[4]].append(r[0])
queries, qrels = [], []
for fine, ids in sorted(by_fine.items()):
    if len(ids) < 8:
        continue
    qid = f"c{len(queries)}"
    queries.append((qid, fine.replace("/", " ")))
    qrels.extend((qid, i) for i in ids)
for number, (text, relevant) in enumerate(hand_written):
    ids = [r[0] for r in rows if relevant(r)]
    if not ids:
        sys.exit(f"hand-written query {text!r} has no relevant item")
    qid = f"h{number}"
    queries.append((qid, text))
    qrels.extend((qid, i) for i in ids)

os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "corpus.tsv"), "w", encoding="utf-8") as f:
    for r in rows:
        f.write(f"{r[0]}\t{r[1]}\n")
with open(os.path.join(out, "queries.tsv"), "w", encoding="utf-8") as f:
    for qid, text in queries:
        f.write(f"{qid}\t{text}\n")
with open(os.path.join(out, "qrels.tsv"), "w", encoding="utf-8") as f:
    for qid, doc in qrels:
        f.write(f"{qid}\t0\t{doc}\t1\n")
print(f"{len(rows)} items, {len(queries)} queries ({len(hand_written)} hand-written), {len(qrels)} judgements -> {out}")
