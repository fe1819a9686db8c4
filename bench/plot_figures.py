#!/usr/bin/env python3
"""The paper's section 5 figures as PNG plots, from `isostack bench` records.

    plot_figures.py DIR
        DIR/records.json -> DIR/<figure>-<topology>-<mtu>.png, one per
        figure and topology/MTU found (fig4-wire-1500.png, ...)
    plot_figures.py --check DIR|FILE...
        checks that every PNG named (or every *.png in DIR) is a whole,
        valid PNG; standard library only, no matplotlib needed

Each plot reads like the paper's: throughput as grouped bars per x value
(Gbit/s for Fig. 4/5/8/9, operations/s for Fig. 6/7/10; x is the message
size or the number of connections), one colour per stack variant, and the
total CPU utilisation of the run (cpu_total_pct, 100% = every core busy;
isostack's stack core counts as fully busy, as in the paper) as a line of
the same colour on a second axis, 0-100%. A point that failed (ok false)
or has no value is drawn as a cross on the x axis and listed in a note.

records.json is {"meta": {...}, "records": [{figure, stack, variant,
topology, mtu, mode, conns, msg_bytes, ok, error, gbit_per_s, msgs_per_s,
cpu_total_pct, ...}, ...]}; fields other than figure/variant/topology/mtu
and the x value may be missing. Before drawing, PNGs of this script's own
naming left in DIR by an earlier run are removed, so a plot never outlives
the records it came from.

Exit status: 0 plots written (or nothing to plot), 1 --check found a bad
file, 2 bad usage or unreadable records, 3 matplotlib is not installed
(the runner treats that as "no plots").
"""
import glob
import json
import os
import re
import struct
import sys
import textwrap
import zlib

# figure: caption (after the paper's), mode, x axis ("bytes" or "conns"),
# the paper's fixed value of the other axis, metric ("gbit" or "ops").
FIGURES = {
    "fig4": ("Receive, {conns} connections", "recv", "bytes", 64, "gbit"),
    "fig5": ("Transmit, {conns} connections", "send", "bytes", 128, "gbit"),
    "fig6": ("Request/response, {conns} connection{s}", "rr", "bytes", 1, "ops"),
    "fig7": ("Request/response, {size} messages", "rr", "conns", 1024, "ops"),
    "fig8": ("Impact of the extra lock on transmit, {size} messages",
             "send", "conns", 64, "gbit"),
    "fig9": ("Transmit, three queueing variants, {size} messages",
             "send", "conns", 64, "gbit"),
    "fig10": ("Request/response scalability, {size} messages",
              "rr", "conns", 1024, "ops"),
}

# variant: legend label, colour (Okabe-Ito, readable by colour-blind eyes
# and in greyscale by lightness). Iso-Core is the paper's Iso-Kernel.
VARIANTS = {
    "native": ("Native (kernel)", "#555555"),
    "basic": ("Iso-Basic", "#009E73"),
    "aggregate": ("Iso-Aggregate", "#E69F00"),
    "core": ("Iso-Core", "#0072B2"),
    "lock": ("Iso-Lock", "#D55E00"),
}

TOPOLOGIES = {
    "wire": "wire: isostackd on a veth to a Linux peer (kernel: veth pair)",
    "nokernel": "no kernel: both ends on isostack (kernel: loopback, one core)",
}

PNG_NAME = re.compile(r"^fig(?:[4-9]|10)-[a-z0-9]+-[0-9]+(?:-[0-9]+[cb])?\.png$")
PNG_SIG = b"\x89PNG\r\n\x1a\n"

# The note under a plot: characters a line, lines at most, inches a line.
NOTE_WIDTH = 150
NOTE_LINES = 6
NOTE_LINE_IN = 0.15

EXIT_BAD_FILE = 1
EXIT_USAGE = 2
EXIT_NO_MATPLOTLIB = 3


def size_label(n):
    """64 -> '64', 1024 -> '1K', 65536 -> '64K' (the paper's axis labels)."""
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    return str(n)


def size_text(n):
    """64 -> '64 B', 1024 -> '1 KB' (captions)."""
    label = size_label(n)
    return f"{label[:-1]} KB" if label.endswith("K") else f"{n} B"


# ---- records -> plot groups ---------------------------------------------

def load_records(path):
    """Returns the list of records, or raises ValueError saying why not."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise ValueError(f"{path}: {e.strerror}")
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}")
    recs = doc.get("records") if isinstance(doc, dict) else None
    if not isinstance(recs, list):
        raise ValueError(f"{path}: no list 'records'")
    return [r for r in recs if isinstance(r, dict)]


def group_key(rec):
    """(figure, topology, mtu, fixed) for a plottable record, else None.
    fixed is the value of the axis the figure holds constant (connections
    for a size sweep, bytes for a connection sweep)."""
    fig = rec.get("figure")
    if fig not in FIGURES or rec.get("variant") not in VARIANTS:
        return None
    axis = FIGURES[fig][2]
    fixed = rec.get("conns") if axis == "bytes" else rec.get("msg_bytes")
    x = rec.get("msg_bytes") if axis == "bytes" else rec.get("conns")
    if not isinstance(fixed, int) or not isinstance(x, int):
        return None
    topo = str(rec.get("topology") or "wire")
    # No kernel on the path: each stack's own loopback MTU (the kernel's lo
    # 65536, isostack's port), one plot for both: mtu -1.
    mtu = -1 if topo == "nokernel" else int(rec.get("mtu") or 0)
    return (fig, topo, mtu, fixed)


def group_records(recs):
    """{group_key: [record]} over the plottable records; the count of the
    others (unknown figure or variant, no x value) is returned beside it."""
    groups, skipped = {}, 0
    for r in recs:
        k = group_key(r)
        if k is None:
            skipped += 1
            continue
        groups.setdefault(k, []).append(r)
    return groups, skipped


def png_name(key):
    fig, topo, mtu, fixed = key
    topo = re.sub(r"[^a-z0-9]", "", topo.lower()) or "topo"
    name = f"{fig}-{topo}" if mtu < 0 else f"{fig}-{topo}-{mtu}"
    if fixed != FIGURES[fig][3]:
        name += f"-{fixed}{'c' if FIGURES[fig][2] == 'bytes' else 'b'}"
    return name + ".png"


def title_of(key):
    fig, topo, mtu, fixed = key
    caption, _, axis, _, _ = FIGURES[fig]
    if axis == "bytes":
        text = caption.format(conns=fixed, s="" if fixed == 1 else "s")
    else:
        text = caption.format(size=size_text(fixed))
    where = TOPOLOGIES.get(topo, topo)
    mtu_text = "each stack's loopback MTU" if mtu < 0 else f"MTU {mtu or 'not recorded'}"
    return f"Fig. {fig[3:]}: {text}", f"{where}; {mtu_text}"


def value_of(rec, metric):
    """The bar height, or None when the point did not give one."""
    if rec.get("ok") is False:
        return None
    v = rec.get("gbit_per_s" if metric == "gbit" else "msgs_per_s")
    return float(v) if isinstance(v, (int, float)) else None


def series_of(recs, axis):
    """xs (sorted) and [(variant, {x: record})] in legend order. Of two
    records for one point (a retry) the later one wins, unless it failed
    and the earlier did not."""
    xs, by_var = set(), {}
    for r in recs:
        x = r["msg_bytes"] if axis == "bytes" else r["conns"]
        xs.add(x)
        pts = by_var.setdefault(r["variant"], {})
        if x not in pts or r.get("ok") is not False or pts[x].get("ok") is False:
            pts[x] = r
    order = [v for v in VARIANTS if v in by_var]
    return sorted(xs), [(v, by_var[v]) for v in order]


def error_of(rec):
    """The first line of a failed point's error, cut to fit a note."""
    err = (rec.get("error") or "").strip().splitlines()
    err = err[0] if err else "no value recorded"
    return err if len(err) <= 90 else err[:87] + "..."


def grouped(items, axis):
    """[(variant, x, why)] -> ["Iso-Lock at 1, 2, 4 conns: why", ...]: one
    entry per variant and reason, in the order first seen."""
    groups = {}
    for variant, x, why in items:
        groups.setdefault((variant, why), []).append(x)
    unit = "B" if axis == "bytes" else " conns"
    out = []
    for (variant, why), xs in groups.items():
        where = ", ".join(size_label(x) if axis == "bytes" else str(x) for x in xs)
        out.append(f"{VARIANTS[variant][0]} at {where}{unit}" + (f": {why}" if why else ""))
    return out


# ---- drawing ------------------------------------------------------------

def ops_formatter(v, _pos):
    """Operations/s ticks: 250k, 1.5M."""
    if v >= 1e6:
        return f"{v / 1e6:g}M"
    if v >= 1e3:
        return f"{v / 1e3:g}k"
    return f"{v:g}"


def draw_bars(ax, ax_cpu, xs, series, axis, metric, patheffects):
    """Bars and CPU lines; returns the points not measured and the points
    measured without a CPU figure, each as [(variant, x, why)]."""
    halo = [patheffects.withStroke(linewidth=3.6, foreground="white")]
    n = len(series)
    width = 0.8 / max(n, 2)                     # a lone series stays narrow too
    notes, no_cpu = [], []
    for i, (variant, pts) in enumerate(series):
        colour = VARIANTS[variant][1]
        offs = [j + width * (i - (n - 1) / 2) for j in range(len(xs))]
        hx, hy, cx, cy, fx = [], [], [], [], []
        for j, x in enumerate(xs):
            rec = pts.get(x)
            if rec is None:
                continue
            v = value_of(rec, metric)
            if v is None:
                fx.append(offs[j])
                notes.append((variant, x, error_of(rec)))
                continue
            hx.append(offs[j])
            hy.append(v)
            cpu = rec.get("cpu_total_pct")
            if isinstance(cpu, (int, float)):
                cx.append(offs[j])
                cy.append(float(cpu))
            else:
                no_cpu.append((variant, x, ""))
        ax.bar(hx, hy, width * 0.92, color=colour, zorder=2)
        if fx:
            ax.plot(fx, [0] * len(fx), linestyle="none", marker="x", color=colour,
                    markersize=9, markeredgewidth=2.2, clip_on=False, zorder=4)
        if cx:
            # A white halo keeps the line readable where it crosses bars,
            # its own colour's included.
            ax_cpu.plot(cx, cy, color=colour, linewidth=1.6, linestyle="--",
                        marker="o", markersize=6, markeredgecolor="white",
                        markeredgewidth=1.2, zorder=5, path_effects=halo)
    return notes, no_cpu


def style_axes(ax, ax_cpu, xs, axis, metric, ticker):
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([size_label(x) if axis == "bytes" else str(x) for x in xs])
    pad = max(0, 4 - len(xs)) / 2               # a lone point's bars stay narrow
    ax.set_xlim(-0.6 - pad, len(xs) - 0.4 + pad)
    ax.set_xlabel("Message size (bytes)" if axis == "bytes"
                  else "Connections (one application thread each)")
    if metric == "gbit":
        ax.set_ylabel("Throughput (Gbit/s)")
    else:
        ax.set_ylabel("Operations/s (request/response round trips)")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(ops_formatter))
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 1.08 if top > 0 else 1)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)
    ax_cpu.set_ylim(0, 100)
    ax_cpu.set_ylabel("CPU utilisation, all cores (%)")
    ax_cpu.yaxis.set_major_formatter(ticker.PercentFormatter(decimals=0))
    for a in (ax, ax_cpu):
        a.spines["top"].set_visible(False)


def legend_handles(series, failed, mpatches, mlines):
    handles = [mpatches.Patch(color=VARIANTS[v][1], label=VARIANTS[v][0])
               for v, _ in series]
    handles.append(mpatches.Patch(facecolor="white", edgecolor="#333333",
                                  label="bars: throughput"))
    handles.append(mlines.Line2D([], [], color="#333333", linestyle="--", marker="o",
                                 markeredgecolor="white", label="line: CPU % (right axis)"))
    if failed:
        handles.append(mlines.Line2D([], [], color="#333333", linestyle="none",
                                     marker="x", markeredgewidth=2,
                                     label="not measured (see note)"))
    return handles


def notes_lines(notes, no_cpu, iso, axis):
    """The note under the legend, wrapped to the figure's width and at most
    NOTE_LINES lines (the count of the rest is in plot_figures' output)."""
    paras = []
    if iso:
        paras.append("CPU: the isostack stack core counts as 100% busy, as in the paper.")
    if no_cpu:
        paras.append("No CPU figure: " + "; ".join(grouped(no_cpu, axis)) + ".")
    if notes:
        paras.append("Not measured: " + "; ".join(grouped(notes, axis)) + ".")
    lines = [ln for p in paras for ln in textwrap.wrap(p, NOTE_WIDTH,
                                                       subsequent_indent="    ")]
    if len(lines) > NOTE_LINES:
        lines = lines[:NOTE_LINES - 1] + [lines[NOTE_LINES - 1][:NOTE_WIDTH - 4] + " ..."]
    return lines


def plot_group(plt, mods, key, recs, path):
    _, _, axis, _, metric = FIGURES[key[0]]
    ticker, mpatches, mlines, patheffects = mods
    xs, series = series_of(recs, axis)
    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=110)
    ax_cpu = ax.twinx()
    ax.set_zorder(ax_cpu.get_zorder() - 1)      # bars under the CPU lines
    ax.patch.set_visible(False)
    notes, no_cpu = draw_bars(ax, ax_cpu, xs, series, axis, metric, patheffects)
    style_axes(ax, ax_cpu, xs, axis, metric, ticker)
    title, sub = title_of(key)
    lines = notes_lines(notes, no_cpu, any(v != "native" for v, _ in series), axis)
    # Inches from the bottom: the note, the legend above it, then the x
    # axis; the figure grows by the note lines past two, the plot does not.
    note_h = 0.1 + NOTE_LINE_IN * max(len(lines), 2)
    height = 5.6 + NOTE_LINE_IN * max(len(lines) - 2, 0)
    fig.set_size_inches(10, height)
    if lines:
        fig.text(0.06, 0.1 / height, "\n".join(lines), fontsize=8.5, color="#444444",
                 va="bottom", ha="left", linespacing=1.25)
    handles = legend_handles(series, bool(notes), mpatches, mlines)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4),
               frameon=False, fontsize=9.5, bbox_to_anchor=(0.5, (note_h + 0.02) / height))
    fig.suptitle(title, fontsize=14, fontweight="bold", x=0.06, ha="left",
                 y=1 - 0.14 / height)
    ax.set_title(sub, fontsize=10, color="#444444", loc="left", pad=8)
    fig.subplots_adjust(left=0.09, right=0.91, top=1 - 0.73 / height,
                        bottom=(note_h + 1.05) / height)
    fig.savefig(path)
    plt.close(fig)
    return len(notes)


def remove_stale(outdir):
    for p in glob.glob(os.path.join(outdir, "fig*.png")):
        if PNG_NAME.match(os.path.basename(p)):
            os.unlink(p)


def import_matplotlib():
    """(pyplot, (ticker, patches, lines, patheffects)) or None. Debian's
    python3-matplotlib lives in the system interpreter's dist-packages: when
    this python (a pyenv or venv one, say) lacks it, run again under
    /usr/bin/python3 once."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker, patches, lines, patheffects
        return plt, (ticker, patches, lines, patheffects)
    except ImportError:
        pass
    sysp = "/usr/bin/python3"
    if (os.environ.get("ISOSTACK_PLOT_REEXEC") != "1" and os.access(sysp, os.X_OK)
            and os.path.realpath(sys.executable) != os.path.realpath(sysp)):
        os.environ["ISOSTACK_PLOT_REEXEC"] = "1"
        os.execv(sysp, [sysp, os.path.abspath(__file__)] + sys.argv[1:])
    return None


def plot_dir(outdir):
    try:
        recs = load_records(os.path.join(outdir, "records.json"))
    except ValueError as e:
        print(f"plot_figures: {e}", file=sys.stderr)
        return EXIT_USAGE
    remove_stale(outdir)                        # also when nothing is drawn
    mpl = import_matplotlib()
    if mpl is None:
        print("plot_figures: matplotlib is not installed (apt-get install "
              "python3-matplotlib); no plots")
        return EXIT_NO_MATPLOTLIB
    plt, mods = mpl
    groups, skipped = group_records(recs)
    if skipped:
        print(f"plot_figures: {skipped} record(s) without a known figure, "
              "variant or x value left out")
    if not groups:
        print("plot_figures: no records to plot")
        return 0
    order = {f: i for i, f in enumerate(FIGURES)}
    for key in sorted(groups, key=lambda k: (order[k[0]], k[1], k[2], k[3])):
        path = os.path.join(outdir, png_name(key))
        missing = plot_group(plt, mods, key, groups[key], path)
        note = f" ({missing} point(s) not measured)" if missing else ""
        print(f"plot_figures: {path}: {len(groups[key])} record(s){note}")
    return 0


# ---- --check: PNG structure, standard library only -----------------------

def png_problem(data):
    """None when data is a whole PNG, else what is wrong with it."""
    if data[:8] != PNG_SIG:
        return "no PNG signature"
    pos, first, seen_idat = 8, True, False
    while True:
        if pos + 8 > len(data):
            return f"truncated at byte {pos} (no IEND)"
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        if length > 0x7fffffff or not ctype.isalpha():
            return f"bad chunk header at byte {pos}"
        end = pos + 8 + length + 4
        if end > len(data):
            return f"chunk {ctype.decode('latin-1')} at byte {pos} runs past the end"
        body = data[pos + 8:pos + 8 + length]
        crc, = struct.unpack(">I", data[end - 4:end])
        if zlib.crc32(ctype + body) & 0xffffffff != crc:
            return f"CRC mismatch in chunk {ctype.decode()} at byte {pos}"
        if first:
            if ctype != b"IHDR" or length != 13:
                return "first chunk is not a 13-byte IHDR"
            w, h, depth, colour = struct.unpack(">IIBB", body[:10])
            if w == 0 or h == 0 or depth not in (1, 2, 4, 8, 16) or colour not in (0, 2, 3, 4, 6):
                return f"bad IHDR ({w}x{h}, depth {depth}, colour type {colour})"
            first = False
        seen_idat |= ctype == b"IDAT"
        pos = end
        if ctype == b"IEND":
            if length != 0:
                return "IEND chunk with data"
            if not seen_idat:
                return "no IDAT chunk"
            if pos != len(data):
                return f"{len(data) - pos} byte(s) after IEND"
            return None


def png_size(data):
    return struct.unpack(">II", data[16:24])


def check_pngs(args):
    paths = []
    for a in args:
        if os.path.isdir(a):
            paths += sorted(glob.glob(os.path.join(a, "*.png")))
        else:
            paths.append(a)
    if not paths:
        print(f"plot_figures --check: no PNG files in {' '.join(args)}")
        return EXIT_BAD_FILE
    bad = 0
    for p in paths:
        try:
            with open(p, "rb") as f:
                data = f.read()
            problem = png_problem(data)
        except OSError as e:
            problem = e.strerror
        if problem:
            bad += 1
            print(f"BAD {p}: {problem}")
        else:
            w, h = png_size(data)
            print(f"ok  {p}: {w}x{h}, {len(data)} bytes")
    print(f"plot_figures --check: {len(paths) - bad} ok, {bad} bad")
    return EXIT_BAD_FILE if bad else 0


def usage():
    print("usage: plot_figures.py DIR\n"
          "       plot_figures.py --check DIR|FILE.png...", file=sys.stderr)
    return EXIT_USAGE


def main(argv):
    if len(argv) >= 2 and argv[0] == "--check":
        return check_pngs(argv[1:])
    if len(argv) != 1 or argv[0].startswith("-"):
        return usage()
    return plot_dir(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
