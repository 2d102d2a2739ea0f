#!/usr/bin/env python3
"""Builds the bundled demo catalog from ../shared/data/flipkart-20k (CC BY-SA 4.0).

Takes a deterministic sample of about 2,000 products, spread over the top categories in
proportion to their size (every category with at least one product keeps one), and writes
it as JSON lines in Inkling's product format. Re-run it to regenerate
cluster/node/demo/flipkart-sample.jsonl; the output is byte-identical for the same input.

With --all OUT it writes every usable product instead (about 20,000) to OUT, for the
whole-catalog probe set (ops/tools/probes/flipkart.tsv); keep OUT outside the repository.

Usage: scripts/make-demo-catalog.py [--all OUT] [flipkart_products_20k.csv]
"""
import argparse
import csv
import json
import random
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "flipkart-20k" / "flipkart_products_20k.csv"
TARGET = ROOT / "cluster" / "node" / "demo" / "flipkart-sample.jsonl"
SAMPLE_SIZE = 2000


def category_path(raw):
    try:
        tree = json.loads(raw)[0]
    except (ValueError, IndexError):
        return []
    levels = [level.strip() for level in tree.split(">>")]
    # The last level repeats the product name: it is not a category.
    return [level for level in levels[:-1] if level][:4]


def price(row):
    for column in ("discounted_price", "retail_price"):
        try:
            value = float(row[column])
        except (TypeError, ValueError):
            continue
        if value > 0:
            return value
    return None


def rating(row):
    try:
        value = float(row["product_rating"])
    except (TypeError, ValueError):
        return None
    return value if 0 <= value <= 5 else None


def product(row):
    path = category_path(row["product_category_tree"])
    amount = price(row)
    if not path or amount is None or not row["product_name"].strip():
        return None
    return {
        "id": "fk-" + row["pid"],
        "title": row["product_name"].strip(),
        "category_path": path,
        "brand": row["brand"].strip() or None,
        "price": amount,
        "currency": "INR",
        "rating": rating(row),
        "in_stock": True,
        "attributes": {},
    }


def write(items, target):
    with open(target, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE)
    parser.add_argument("--all", type=Path, help="write every product to this file")
    args = parser.parse_args()
    source = args.source
    by_category = defaultdict(list)
    seen = set()
    with open(source, encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            item = product(row)
            if item is None or item["id"] in seen:
                continue
            seen.add(item["id"])
            by_category[item["category_path"][0]].append(item)
    total = sum(len(items) for items in by_category.values())
    if args.all:
        everything = sorted(
            (item for items in by_category.values() for item in items), key=lambda item: item["id"]
        )
        write(everything, args.all)
        print(f"wrote {len(everything)} products in {len(by_category)} top categories to {args.all}")
        return
    rng = random.Random(20161)
    sample = []
    for category in sorted(by_category):
        items = by_category[category]
        quota = max(1, round(SAMPLE_SIZE * len(items) / total))
        sample.extend(rng.sample(items, min(quota, len(items))))
    sample.sort(key=lambda item: item["id"])
    write(sample, TARGET)
    print(f"wrote {len(sample)} products in {len(by_category)} top categories to {TARGET}")


if __name__ == "__main__":
    main()
