#!/usr/bin/env python3
"""Builds a Chinese evaluation catalog from ../shared/data/openbg-zh (research use only).

openbg-zh holds 997 real Taobao/Tmall products: Chinese titles with brands in them, a
brand in the marketplace's own spelling ("MIUI/小米", "honor/荣耀", "小米（家电）"), a
coarse and a fine category. It has no prices, so every product is written at price 0 in
CNY: probes over it check brands, categories and what a price was understood as, never the
products' prices. Keep OUT outside the repository; the data may not ship with the product.

Usage: scripts/make-openbg-catalog.py OUT [openbg_items_zh.tsv]
"""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "openbg-zh" / "openbg_items_zh.tsv"
# Placeholders the marketplace uses when a seller names no brand.
NO_BRAND = {"", "other/其他", "other其他", "其他品牌", "见描述", "其他", "other"}


def attributes(raw):
    """`k#:#v#;#k#:#v` to a map; a key given several times keeps its values in order."""
    values = {}
    for pair in raw.split("#;#"):
        key, _, value = pair.partition("#:#")
        key, value = key.strip(), value.strip()
        if key and value and value not in values.get(key, []):
            values.setdefault(key, []).append(value)
    return {key: "、".join(found) for key, found in values.items()}


def product(number, line):
    columns = line.rstrip("\n").split("\t")
    if len(columns) < 4 or not columns[0].strip():
        return None
    title, brand, coarse, fine = (column.strip() for column in columns[:4])
    return {
        "id": f"bg-{number:04d}",
        "title": title,
        "category_path": [level for level in (coarse, fine) if level],
        "brand": None if brand.lower() in NO_BRAND else brand,
        "price": 0,
        "currency": "CNY",
        "rating": None,
        "in_stock": True,
        "attributes": attributes(columns[4]) if len(columns) > 4 else {},
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("source", nargs="?", type=Path, default=SOURCE)
    args = parser.parse_args()
    with open(args.source, encoding="utf-8") as handle:
        lines = handle.readlines()[1:]  # the first line is the header
    items = [item for number, line in enumerate(lines, 1) if (item := product(number, line))]
    with open(args.out, "w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(items)} products to {args.out}")


if __name__ == "__main__":
    main()
