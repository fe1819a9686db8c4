#!/usr/bin/env python3
"""bench/plot_figures.py on a synthetic records.json (gen_records.py).

    test_plot_figures.py PLOTTER

Plots into a temp dir and checks: exactly the expected PNGs (one per
figure and topology/MTU, the --only point's own), a stale plot of an
earlier run removed, records it cannot place left out and failed points
counted, every PNG valid by `--check` at the plotter's size; `--check`
rejects a flipped byte, a truncation, bytes after IEND and a non-PNG, and
runs without matplotlib (standard library only); without matplotlib the
plotter says so in one line and exits 3; an unreadable records.json exits 2.
Exits 77 when matplotlib is not installed (apt-get install python3-matplotlib).
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_records  # noqa: E402

PNG_W, PNG_H = 1100, 616        # figsize (10, 5.6) at 110 dpi
failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)


def run(args, python=None, env=None):
    cmd = (python or [sys.executable]) + [PLOTTER] + args
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **(env or {})))
    return p.returncode, p.stdout, p.stderr


def pngs(d):
    return sorted(f for f in os.listdir(d) if f.endswith(".png"))


def check_plots(d):
    stale = os.path.join(d, "fig4-wire-9000.png")
    with open(stale, "wb") as f:
        f.write(b"an old run's plot")
    gen_records.write(d)
    rc, out, err = run([d])
    if rc == 3:
        print(f"SKIP: {out.strip()}")
        sys.exit(77)
    expect(rc == 0, f"plotter exits 0 (got {rc}; stderr: {err.strip()})")
    expect(pngs(d) == gen_records.EXPECTED_PNGS,
           f"PNGs written: {pngs(d)} == {gen_records.EXPECTED_PNGS}")
    expect(not os.path.exists(stale), "stale fig4-wire-9000.png removed")
    m = re.search(r"(\d+) record\(s\) without a known figure", out)
    expect(m is not None and int(m.group(1)) == gen_records.EXPECTED_LEFT_OUT,
           f"{gen_records.EXPECTED_LEFT_OUT} records reported left out")
    for name in gen_records.EXPECTED_PNGS:
        line = [ln for ln in out.splitlines() if ln.split(": ")[1:2] == [os.path.join(d, name)]]
        m = re.search(r"\((\d+) point\(s\) not measured\)", line[0]) if line else None
        got = int(m.group(1)) if m else 0
        want = gen_records.EXPECTED_NOT_MEASURED.get(name, 0)
        expect(len(line) == 1 and got == want, f"{name}: {want} point(s) not measured reported")

    rc, out, _ = run(["--check", d])
    expect(rc == 0, f"--check on the plots exits 0 (got {rc})")
    for name in gen_records.EXPECTED_PNGS:
        expect(f"ok  {os.path.join(d, name)}: {PNG_W}x{PNG_H}," in out,
               f"--check: {name} valid, {PNG_W}x{PNG_H}")
    contents = {open(os.path.join(d, n), "rb").read() for n in gen_records.EXPECTED_PNGS}
    expect(len(contents) == len(gen_records.EXPECTED_PNGS), "every plot differs from the others")

    # --check needs nothing beyond the standard library: no site-packages.
    rc, out, _ = run(["--check", d], python=[sys.executable, "-S", "-E"])
    oks = [ln for ln in out.splitlines() if ln.startswith("ok  ")]
    expect(rc == 0 and len(oks) == len(contents), "--check runs without site-packages")


def check_bad_pngs(d, good):
    data = open(good, "rb").read()
    cases = {
        "flipped.png": data[:200] + bytes([data[200] ^ 0x01]) + data[201:],
        "truncated.png": data[:len(data) // 2],
        "trailing.png": data + b"\0\0",
        "notpng.png": b"GIF89a" + data[6:],
        "noiend.png": data[:-12],
    }
    for name, blob in cases.items():
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(blob)
        rc, out, _ = run(["--check", path])
        expect(rc == 1 and out.startswith(f"BAD {path}: "), f"--check rejects {name}: "
               + (out.splitlines()[0] if out else "(no output)"))
    shutil.copy(good, os.path.join(d, "good.png"))
    rc, out, _ = run(["--check", d])
    expect(rc == 1 and f"ok  {os.path.join(d, 'good.png')}" in out
           and out.count("BAD ") == len(cases),
           "--check DIR: the good file listed ok, every bad one BAD, exit 1")
    empty = os.path.join(d, "empty")
    os.mkdir(empty)
    rc, _, _ = run(["--check", empty])
    expect(rc == 1, "--check on a dir without PNGs exits 1")


def check_errors(d):
    rc, _, err = run([d])
    expect(rc == 2 and "records.json" in err, "no records.json: exit 2, says so")
    with open(os.path.join(d, "records.json"), "w") as f:
        f.write("{\"records\": 7}")
    rc, _, err = run([d])
    expect(rc == 2 and "records" in err, "records not a list: exit 2, says so")
    # The system python without its site-packages has no matplotlib.
    if not os.access("/usr/bin/python3", os.X_OK):
        print("skip the no-matplotlib check: no /usr/bin/python3")
        return
    gen_records.write(d)
    with open(os.path.join(d, "fig5-wire-1500.png"), "wb") as f:
        f.write(b"old")
    rc, out, _ = run([d], python=["/usr/bin/python3", "-S"],
                     env={"ISOSTACK_PLOT_REEXEC": "1"})
    expect(rc == 3 and len(out.splitlines()) == 1 and "matplotlib" in out,
           f"no matplotlib: one line, exit 3 (got {rc}: {out.strip()})")
    expect(pngs(d) == [], "no matplotlib: no PNG left in the dir")


def main():
    with tempfile.TemporaryDirectory(prefix="plotfig.") as tmp:
        plots, bad, errs = (os.path.join(tmp, n) for n in ("plots", "bad", "errs"))
        for p in (plots, bad, errs):
            os.mkdir(p)
        check_plots(plots)
        check_bad_pngs(bad, os.path.join(plots, gen_records.EXPECTED_PNGS[0]))
        check_errors(errs)
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: test_plot_figures.py bench/plot_figures.py")
    PLOTTER = os.path.abspath(sys.argv[1])
    sys.exit(main())
