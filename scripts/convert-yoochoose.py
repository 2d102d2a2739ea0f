#!/usr/bin/env python3
"""Converts session-rec's YOOCHOOSE files (TSV `SessionId ItemId Time`) into the format
`inkling eval sessions` reads: a training file with one session a line (item ids in time
order) and a test file of `prefix<TAB>target` cases, one per position of every test session
(as the SR-GNN papers build theirs). Nothing is filtered.

usage: convert-yoochoose.py TRAIN_TSV TEST_TSV OUT_DIR
writes OUT_DIR/train_sessions.txt and OUT_DIR/test_prefix_target.tsv"""
import csv
import sys
from collections import defaultdict
from pathlib import Path


def sessions(path):
    clicks = defaultdict(list)
    with open(path, encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            clicks[row["SessionId"]].append((float(row["Time"]), row["ItemId"]))
    ordered = sorted(clicks.values(), key=lambda events: min(t for t, _ in events))
    return [[item for _, item in sorted(events)] for events in ordered]


def main():
    train_tsv, test_tsv, out_dir = sys.argv[1:4]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = sessions(train_tsv)
    with open(out / "train_sessions.txt", "w", encoding="utf-8") as handle:
        for session in train:
            handle.write(" ".join(session) + "\n")
    cases = 0
    with open(out / "test_prefix_target.tsv", "w", encoding="utf-8") as handle:
        handle.write("prefix\ttarget\n")
        for session in sessions(test_tsv):
            for end in range(1, len(session)):
                handle.write(" ".join(session[:end]) + "\t" + session[end] + "\n")
                cases += 1
    print(f"{len(train)} training sessions, {cases} test cases")


if __name__ == "__main__":
    main()
