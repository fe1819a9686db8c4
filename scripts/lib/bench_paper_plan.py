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
FIG_ORDER = list(FIGURES)

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
        if fig not in FIGURES:
            raise ValueError(f"--only: unknown figure '{fig}' (fig4..fig10, l2)")
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


def plan(quick, only, topologies, stacks):
    """Returns (groups, l2): groups is an ordered list of
    ((stack, variant, topology_name), [measurement]), each measurement a
    dict with mode, conns, bytes and figures (the figures it serves)."""
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
            if sel[fig] is None:
                if quick:
                    xs = (QUICK_NOKERNEL_X.get(fig, []) if topo == "nokernel"
                          else QUICK_X[fig])
                else:
                    xs = SIZES if FIGURES[fig][1] == "bytes" else CONNS
                points = figure_points(fig, xs)
            else:
                points = sel[fig]
            mode, _, _, variants = FIGURES[fig]
            for variant in ["native"] + variants:
                stack = "kernel" if variant == "native" else "isostack"
                if stack not in stacks:
                    continue
                for conns, nbytes in points:
                    key = (stack, variant, topo, mode, conns, nbytes)
                    m = meas.setdefault(key, {"mode": mode, "conns": conns,
                                              "bytes": nbytes, "figures": []})
                    if fig not in m["figures"]:
                        m["figures"].append(fig)
    # l2 compares testpmd with isostackd's packet rate at Fig. 5's 64 B point
    # (the one this run measures, if --only picked another connection count).
    if l2 and "isostack" in stacks and "wire" in topologies:
        chosen = [k for k in meas if k[:4] == ("isostack", "core", "wire", "send") and
                  k[5] == 64 and "fig5" in meas[k]["figures"]]
        key = chosen[0] if chosen else ("isostack", "core", "wire", "send", 128, 64)
        meas.setdefault(key, {"mode": "send", "conns": key[4], "bytes": 64, "figures": []})
        meas[key]["l2"] = True
    elif l2:
        l2 = False
    groups = {}
    for (stack, variant, topo, *_), m in meas.items():
        groups.setdefault((stack, variant, topo), []).append(m)
    topo_rank = {t: i for i, t in enumerate(TOPOLOGIES)}
    order = sorted(groups, key=lambda g: (topo_rank[g[2]], VARIANT_ORDER.index(g[1])))
    for g in order:
        groups[g].sort(key=lambda m: (["recv", "send", "rr"].index(m["mode"]),
                                      m["conns"], m["bytes"]))
    return [(g, groups[g]) for g in order], l2
