#!/usr/bin/env python3
"""Writes testdata/real/aws_models.jsonl: real JSON with the escapes its producer wrote.

The lines are AWS service models as botocore ships them (Apache License 2.0): for each
service, its whole model on one line, then one line per shape and per operation. The text is
minified by dropping whitespace outside strings only. String bytes stay as written, with the
models' own `\\"`, `\\n` and `\\uXXXX` escapes. A shape's line is its object, with `kind`
and `name` put first (an operation names itself too, so its line has `name` twice, with the
same value).

Usage: python3 scripts/aws_models.py BOTOCORE_DATA_DIR > testdata/real/aws_models.jsonl
(BOTOCORE_DATA_DIR is `botocore/data` of an installed botocore; the file in the repository
was made from botocore 1.43.11.)
"""
import gzip
import os
import sys

# Small services whose models hold \u escapes.
SERVICES = ["mediastore", "autoscaling-plans", "datapipeline", "chime-sdk-identity",
            "emr-containers", "budgets", "acm"]


def minify(t):
    out, i, n, in_str = [], 0, len(t), False
    while i < n:
        c = t[i]
        if in_str:
            out.append(c)
            if c == "\\":
                out.append(t[i + 1])
                i += 2
                continue
            if c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif c not in " \t\r\n":
            out.append(c)
        i += 1
    return "".join(out)


def skip_str(s, i):
    """From an opening quote to just past its closing quote."""
    i += 1
    while s[i] != '"':
        i += 2 if s[i] == "\\" else 1
    return i + 1


def skip_value(s, i):
    if s[i] == '"':
        return skip_str(s, i)
    if s[i] in "{[":
        depth = 0
        while True:
            c = s[i]
            if c == '"':
                i = skip_str(s, i)
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while s[i] not in ",}]":
        i += 1
    return i


def members(s, i):
    """The (raw key, raw value) pairs of the minified object starting at s[i]."""
    i += 1
    while s[i] != "}":
        start = i
        i = skip_str(s, i)
        key = s[start:i]
        i += 1
        start = i
        i = skip_value(s, i)
        yield key, s[start:i]
        if s[i] == ",":
            i += 1


def main():
    data = sys.argv[1]
    for name in SERVICES:
        version = sorted(os.listdir(os.path.join(data, name)))[-1]
        path = os.path.join(data, name, version, "service-2.json.gz")
        with gzip.open(path, "rt", encoding="utf-8") as f:
            model = minify(f.read())
        print(model)
        for key, value in members(model, 0):
            if key in ('"shapes"', '"operations"'):
                for part, body in members(value, 0):
                    if body.startswith("{") and body != "{}":
                        print('{"kind":%s,"name":%s,%s' % (key, part, body[1:]))


main()
