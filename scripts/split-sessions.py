#!/usr/bin/env python3
"""Holds out the last share of a training-session file as a validation set in the papers'
format, so weights can be chosen without ever reading the test file.

usage: split-sessions.py TRAIN OUT_DIR [--share 0.1]
writes OUT_DIR/train.txt (the first sessions) and OUT_DIR/validation.tsv (`prefix<TAB>target`
for every prefix of every held-out session, as the test files are built)."""
import argparse
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("train")
parser.add_argument("out_dir")
parser.add_argument("--share", type=float, default=0.1)
args = parser.parse_args()
sessions = [line.split() for line in open(args.train, encoding="utf-8") if line.strip()]
cut = int(len(sessions) * (1 - args.share))
out = Path(args.out_dir)
out.mkdir(parents=True, exist_ok=True)
with open(out / "train.txt", "w", encoding="utf-8") as train:
    for session in sessions[:cut]:
        train.write(" ".join(session) + "\n")
with open(out / "validation.tsv", "w", encoding="utf-8") as validation:
    validation.write("prefix\ttarget\n")
    for session in sessions[cut:]:
        for end in range(1, len(session)):
            validation.write(" ".join(session[:end]) + "\t" + session[end] + "\n")
print(f"{cut} training sessions, {len(sessions) - cut} held out")
