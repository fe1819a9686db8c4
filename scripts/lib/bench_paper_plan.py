# The paper's figures (section 5) as a list of measurements for `isostack
# bench`: which figure needs which (stack, variant, topology, MTU, mode,
# connections, message size), and in which order to run them so that each
# daemon configuration comes up once.
#
# A measurement several figures share (Fig. 8 and 9's kernel and Core
# transmit points; Fig. 7 and 10's kernel and Core request/response) runs
# once and gives one record per figure.

SIZES = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536]
CONNS = [1, 2, 4, 8, 16, 32, 64, 128]

# figure: mode, what the x axis varies, the fixed value, isostack variants.
FIGURES = {
    "fig4": ("recv", "bytes", 64, ["core"]),
    "fig5": ("send", "bytes", 128, ["core"]),
    "fig6": ("rr", "bytes", 1, ["core"]),
    "fig7": ("rr", "conns", 1024, ["core"]),
    "fig8": ("send", "conns", 64, ["core", "lock"]),
    "fig9": ("send", "conns", 64, ["basic", "aggregate", "core"]),
    "fig10": ("rr", "conns", 1024, ["basic", "aggregate", "core"]),
}
FIG_ORDER = list(FIGURES) + ["v6"]

# "v6": IPv6 beside IPv4 (issue 15). Its points are not one axis but a few
# of the other figures' (mode, connections, bytes), each measured over
# IPv4 and over IPv6 in the same run, kernel and isostack (Core).
V6_POINTS = [("send", 1, 64), ("send", 1, 16384), ("send", 8, 64), ("send", 8, 16384),
             ("recv", 1, 64), ("recv", 1, 16384), ("recv", 8, 64), ("recv", 8, 16384),
             ("rr", 1, 64), ("rr", 1, 1024), ("rr", 8, 1024)]
V6_QUICK = [("send", 1, 64), ("send", 1, 16384), ("recv", 8, 16384), ("rr", 1, 1024)]
FAMILIES = {"v6": [4, 6]}     # a figure not named here runs over IPv4 only

# The axis points --quick runs: a representative few per figure.
QUICK_X = {
    "fig4": [64, 1024, 16384],
    "fig5": [64, 1024, 16384],
    "fig6": [64, 1024, 16384],
    "fig7": [1, 16, 128],
    "fig8": [1, 128],
    "fig9": [1, 128],
    "fig10": [16, 128],
}

# Topologies: name -> (topology, MTU). The full run puts every figure on
# the wire at 1500 and the stack-bound ones (4-7) also at MTU 9000 and with
# no kernel on either end; --quick runs the wire at 1500 and Fig. 6's 1 KB
# point without a kernel (the latency claim is about that topology).
TOPOLOGIES = {"wire": ("wire", 1500), "wire9000": ("wire", 9000),
              "nokernel": ("nokernel", 1500)}
FULL_FIGS = {"wire": FIG_ORDER, "wire9000": ["fig4", "fig5", "fig6", "fig7"],
             "nokernel": ["fig4", "fig5", "fig6", "fig7"]}
QUICK_FIGS = {"wire": FIG_ORDER, "wire9000": ["fig5"], "nokernel": ["fig6"]}
QUICK_NOKERNEL_X = {"fig6": [1024]}
QUICK_DEFAULT_TOPOLOGIES = ["wire", "nokernel"]

VARIANT_ORDER = ["native", "core", "lock", "basic", "aggregate"]


def parse_only(text):
    """--only fig4,fig7:16x1024,l2 -> ({fig: None or [(conns, bytes)]}, l2)."""
    sel, l2 = {}, False
    for item in filter(None, (text or "").split(",")):
        fig, _, point = item.partition(":")
        if fig == "l2" and not point:
            l2 = True
            continue
        if fig not in FIG_ORDER:
            raise ValueError(f"--only: unknown figure '{fig}' (fig4..fig10, v6, l2)")
        if not point:
            sel[fig] = None
            continue
        try:
            c, b = (int(v) for v in point.lower().split("x"))
        except ValueError:
            raise ValueError(f"--only: '{item}': a point is CONNSxBYTES, e.g. fig4:64x1024")
        if c < 1 or b < 1:
            raise ValueError(f"--only: '{item}': connections and bytes must be > 0")
        if sel.get(fig, []) is not None:
            sel.setdefault(fig, []).append((c, b))
    return sel, l2


def figure_points(fig, xs):
    mode, axis, fixed, _ = FIGURES[fig]
    return [(fixed, x) if axis == "bytes" else (x, fixed) for x in xs]


def figure_measurements(fig, quick, topo, chosen):
    """(mode, conns, bytes) of one figure on one topology; chosen: the
    --only points (CONNSxBYTES) or None for the figure's own."""
    if fig == "v6":
        pts = V6_QUICK if quick else V6_POINTS
        if chosen is not None:
            pts = [p for p in V6_POINTS + V6_QUICK if (p[1], p[2]) in chosen]
        return list(dict.fromkeys(pts))
    if chosen is None:
        if quick:
            xs = QUICK_NOKERNEL_X.get(fig, []) if topo == "nokernel" else QUICK_X[fig]
        else:
            xs = SIZES if FIGURES[fig][1] == "bytes" else CONNS
        chosen = figure_points(fig, xs)
    return [(FIGURES[fig][0], c, b) for c, b in chosen]


def figure_variants(fig):
    return ["core"] if fig == "v6" else FIGURES[fig][3]


def plan(quick, only, topologies, stacks):
    """Returns (groups, l2): groups is an ordered list of
    ((stack, variant, topology_name, family), [measurement]), each
    measurement a dict with mode, conns, bytes, family (4 or 6) and
    figures (the figures it serves)."""
    sel, l2 = parse_only(only)
    if not only:
        sel, l2 = {f: None for f in FIG_ORDER}, True
    explicit = topologies is not None
    if not explicit:
        topologies = QUICK_DEFAULT_TOPOLOGIES if quick else list(TOPOLOGIES)
    meas = {}
    for topo in topologies:
        figs = (QUICK_FIGS if quick else FULL_FIGS)[topo]
        for fig in FIG_ORDER:
            if fig not in sel:
                continue
            if fig not in figs and not (explicit and sel[fig] is not None):
                continue
            points = figure_measurements(fig, quick, topo, sel[fig])
            for variant in ["native"] + figure_variants(fig):
                stack = "kernel" if variant == "native" else "isostack"
                if stack not in stacks:
                    continue
                for (mode, conns, nbytes), fam in ((p, f) for p in points
                                                   for f in FAMILIES.get(fig, [4])):
                    key = (stack, variant, topo, fam, mode, conns, nbytes)
                    m = meas.setdefault(key, {"mode": mode, "conns": conns, "bytes": nbytes,
                                              "family": fam, "figures": []})
                    if fig not in m["figures"]:
                        m["figures"].append(fig)
    # l2 compares testpmd with isostackd's packet rate at Fig. 5's 64 B point
    # (the one this run measures, if --only picked another connection count).
    if l2 and "isostack" in stacks and "wire" in topologies:
        chosen = [k for k in meas if k[:5] == ("isostack", "core", "wire", 4, "send") and
                  k[6] == 64 and "fig5" in meas[k]["figures"]]
        key = chosen[0] if chosen else ("isostack", "core", "wire", 4, "send", 128, 64)
        meas.setdefault(key, {"mode": "send", "conns": key[5], "bytes": 64, "family": 4,
                              "figures": []})
        meas[key]["l2"] = True
    elif l2:
        l2 = False
    groups = {}
    for (stack, variant, topo, fam, *_), m in meas.items():
        groups.setdefault((stack, variant, topo, fam), []).append(m)
    topo_rank = {t: i for i, t in enumerate(TOPOLOGIES)}
    order = sorted(groups, key=lambda g: (topo_rank[g[2]], g[3], VARIANT_ORDER.index(g[1])))
    for g in order:
        groups[g].sort(key=lambda m: (["recv", "send", "rr"].index(m["mode"]),
                                      m["conns"], m["bytes"]))
    return [(g, groups[g]) for g in order], l2
