#!/usr/bin/env python3
"""Quantiles of Prometheus histograms between two scrapes of /metrics.

    histogram-delta.py BEFORE AFTER METRIC [METRIC ...]

For each histogram METRIC (without _bucket), sums the buckets over all label sets, takes
AFTER minus BEFORE, and prints the count, the mean and the p50/p99 upper bucket bounds, as
PromQL's histogram_quantile would estimate them (linear within a bucket)."""
import re
import sys

LINE = re.compile(r'^(\w+)_bucket\{(.*)\} ([0-9.e+-]+)$')


def buckets(path, metric):
    found = {}
    totals = {"sum": 0.0, "count": 0.0}
    for line in open(path):
        match = LINE.match(line.strip())
        if match and match.group(1) == metric:
            bound = re.search(r'le="([^"]+)"', match.group(2)).group(1)
            found[bound] = found.get(bound, 0.0) + float(match.group(3))
        for part in ("sum", "count"):
            if line.startswith(f"{metric}_{part}"):
                totals[part] += float(line.split()[-1])
    return found, totals


def quantile(q, bounds):
    total = bounds[-1][1]
    if total == 0:
        return float("nan")
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in bounds:
        if count >= rank:
            if bound == float("inf"):
                return previous_bound
            share = (rank - previous_count) / max(count - previous_count, 1e-9)
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def main():
    before, after = sys.argv[1], sys.argv[2]
    for metric in sys.argv[3:]:
        (b, bt), (a, at) = buckets(before, metric), buckets(after, metric)
        bounds = sorted(
            ((float(le), a[le] - b.get(le, 0.0)) for le in a),
            key=lambda pair: pair[0],
        )
        count = at["count"] - bt["count"]
        mean = (at["sum"] - bt["sum"]) / count if count else float("nan")
        print(f"{metric}: n={count:.0f} mean={mean:.6g} p50={quantile(0.5, bounds):.6g} "
              f"p99={quantile(0.99, bounds):.6g}")


main()
