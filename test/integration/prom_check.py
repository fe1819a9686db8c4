"""Checks two scrapes of `isostat --prometheus` with the Prometheus client's
own parser (python3-prometheus-client, Debian): test_metrics.sh runs it as
/usr/bin/python3 prom_check.py BEFORE AFTER [--grew NAME]... [--family NAME]...

For each scrape:
  - every sample line is one parsed sample (the parser yields a line it
    cannot place in its family as a family of its own, with no HELP and
    type unknown, so both are counted and compared);
  - every family has a HELP line with text and a TYPE line, counter or
    gauge (an untyped family is a key isostat does not classify);
  - every name starts with isostack_, counters end in _total, and no
    sample (name and labels) appears twice.
Between them: no counter sample went down; each --grew name grew (summed
over its labels); each --family name is present in AFTER.
Exit 0 and a summary, or 1 with every failure on stderr; 77 when the
parser is not installed.
"""
import argparse
import re
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed for /usr/bin/python3 "
          "(apt-get install python3-prometheus-client, or isostack setup)")
    sys.exit(77)

SAMPLE_LINE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+$")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


def check_scrape(path):
    """Parses one scrape; returns {(sample name, labels): value} and the
    families' types by name."""
    text = open(path).read()
    lines = [l for l in text.splitlines() if l.strip()]
    sample_lines = [l for l in lines if not l.startswith("#")]
    helps = {l.split()[2] for l in lines if l.startswith("# HELP ")}
    types = {l.split()[2]: l.split()[3] for l in lines if l.startswith("# TYPE ")}
    if not sample_lines:
        fail(f"{path}: no samples")
    for l in sample_lines:
        if not SAMPLE_LINE.match(l):
            fail(f"{path}: not a sample line of the text format: {l!r}")
    families = list(text_string_to_metric_families(text))
    parsed = sum(len(f.samples) for f in families)
    if parsed != len(sample_lines):
        fail(f"{path}: {len(sample_lines)} sample lines but {parsed} samples parsed")
    samples = {}
    kinds = {}
    for f in families:
        if not f.documentation:
            fail(f"{path}: family {f.name} has no HELP text")
        if f.type not in ("counter", "gauge"):
            fail(f"{path}: family {f.name} is {f.type}, not counter or gauge")
        for s in f.samples:
            # The family name the text format used: counters keep _total.
            if not s.name.startswith("isostack_"):
                fail(f"{path}: {s.name} does not start with isostack_")
            if f.type == "counter" and not s.name.endswith("_total"):
                fail(f"{path}: counter {s.name} does not end in _total")
            if s.name not in helps or s.name not in types:
                fail(f"{path}: {s.name} has no HELP or TYPE line of its own")
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in samples:
                fail(f"{path}: {s.name}{s.labels} twice")
            samples[key] = s.value
            kinds[s.name] = f.type
    print(f"{path}: {len(families)} families, {parsed} samples, every line parsed")
    return samples, kinds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--grew", action="append", default=[])
    ap.add_argument("--family", action="append", default=[])
    a = ap.parse_args()

    before, _ = check_scrape(a.before)
    after, kinds = check_scrape(a.after)
    counters = 0
    for key, v in after.items():
        if kinds.get(key[0]) != "counter" or key not in before:
            continue
        counters += 1
        if v < before[key]:
            fail(f"counter {key[0]}{dict(key[1])} went down: {before[key]:.0f} -> {v:.0f}")
    print(f"{counters} counter samples in both scrapes, none went down")
    for name in a.grew:
        b = sum(v for k, v in before.items() if k[0] == name)
        n = sum(v for k, v in after.items() if k[0] == name)
        if not any(k[0] == name for k in after):
            fail(f"{name}: not in the second scrape")
        elif n <= b:
            fail(f"{name}: did not grow with traffic ({b:.0f} -> {n:.0f})")
        else:
            print(f"{name}: {b:.0f} -> {n:.0f}")
    for name in a.family:
        if not any(k[0] == name for k in after):
            fail(f"{name}: no such family in the second scrape")
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
