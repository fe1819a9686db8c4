#!/usr/bin/env python3
"""The manual pages (man/) against the real interfaces (issue 16).

Every name is taken from where it is defined, never from a list in this
file, so a new command, option, key or variable fails here until its page
says what it is:
  - isostack(8): each command `isostack --help` lists, and each subcommand
    a command's synopsis shows ("isostack bench conns ..."), has a
    subsection ".SS isostack CMD ..."; each option of that command's --help
    (its option lines, indented and starting with a dash, and the options
    of its synopsis) is named in the body of that subsection; each
    ISOSTACK_* variable a --help mentions is named in the page;
  - isostackd(8): each option line of `isostackd --help` and each entry of
    daemon/config.c's long_opts[] is an item (.TP tag) under OPTIONS;
  - isostat(8): each option of isostat's getopt string and longopts[]
    (daemon/isostat.c) and of its usage line is an item under OPTIONS;
  - isostackd.conf(5): each key daemon_set() and port_set() in
    daemon/config.c compare against, and each key of daemon/isostackd.conf
    (its commented [port] example too), is an item in the page's "[daemon]"
    or "[port]" section, the one its parser belongs to; an item whose key
    has a value in daemon/isostackd.conf says "Default: VALUE";
  - the environment variables the code reads (getenv, env_flag) are items
    under ENVIRONMENT: libisosock/ in libisosock(7), daemon/isostat*.c in
    isostat(8), the rest of daemon/ in isostackd(8);
  - man/meson.build installs every page in man/, each page's .TH names it;
  - every page renders with `man --warnings -l` (MANWIDTH=80) and
    `groff -man -ww -z` with exit status 0 and nothing on stderr.
No root, daemon or namespace: only --help is run. Exits 77 (skipped) when
man or groff is not installed (Debian: man-db, groff-base).
"""
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
CLI = os.environ.get("ISOSTACK_CLI", os.path.join(SRC, "scripts", "isostack"))
BUILD = os.environ.get("ISOSTACK_BUILD", os.path.join(SRC, "build"))
MAN = os.path.join(SRC, "man")
PAGES = ["isostack.8", "isostackd.8", "isostat.8", "libisosock.7", "isostackd.conf.5"]

failures = []


def fail(msg):
    print("FAIL: " + msg)
    failures.append(msg)


def skip(msg):
    print("SKIP: " + msg)
    sys.exit(77)


def run(argv, **kw):
    env = dict(os.environ)
    env.pop("NOTIFY_SOCKET", None)
    env.update(kw.pop("env", {}))
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, env=env, timeout=60, **kw)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- roff, as far as these pages use it -----------------------------------

ESCAPES = [(r"\-", "-"), (r"\e", "\\"), (r"\(aq", "'"), (r"\(dq", '"'),
           (r"\(bu", "*"), (r"\~", " "), (r"\c", ""), (r"\%", ""), (r"\&", "")]
ALTERNATING = {"BR", "BI", "IB", "IR", "RB", "RI"}


def plain(text):
    """Text without font changes and with the few escapes the pages use."""
    text = re.sub(r"\\f[BIRP]", "", text)
    for esc, rep in ESCAPES:
        text = text.replace(esc, rep)
    return text


def macro_args(rest):
    """Arguments of a macro line: words, or "quoted words"."""
    return [a[1:-1] if a.startswith('"') else a
            for a in re.findall(r'"[^"]*"|\S+', rest)]


class Page:
    """A page as a list of (section, subsection, kind, text), kind being
    'SH', 'SS', 'tag' (a .TP item's tag line) or 'text'."""

    def __init__(self, name):
        self.name = name
        self.path = os.path.join(MAN, name)
        self.source = read(self.path)
        self.lines = []
        self.th = None
        sh = ss = ""
        tag_next = False
        for line in self.source.splitlines():
            if line.startswith('.\\"') or line.startswith("'\\\""):
                continue
            m = re.match(r"\.([A-Za-z]+)\s*(.*)$", line)
            if m:
                mac, rest = m.group(1), m.group(2)
                args = macro_args(rest)
                if mac == "TH":
                    self.th = args
                    continue
                if mac == "TP":
                    tag_next = True
                    continue
                if mac in ("SH", "SS"):
                    text = plain(" ".join(args))
                    if mac == "SH":
                        sh, ss = text, ""
                    else:
                        ss = text
                    self.lines.append((sh, ss, mac, text))
                    tag_next = False
                    continue
                if mac in ALTERNATING:
                    text = plain("".join(args))
                elif mac in ("B", "I", "SM", "SB"):
                    text = plain(" ".join(args))
                else:               # .PP, .IP, .EX, .RS ... carry no words we check
                    text = plain(" ".join(args[1:] if mac == "IP" else []))
                    if not text:
                        continue
            else:
                text = plain(line)
            self.lines.append((sh, ss, "tag" if tag_next else "text", text))
            tag_next = False

    def tags(self, section):
        """The .TP tags under SH `section` (a regular expression)."""
        return [t for (sh, _, k, t) in self.lines if k == "tag" and re.fullmatch(section, sh)]

    def text(self):
        return "\n".join(t for (_, _, _, t) in self.lines)

    def subsection(self, heading):
        """Body text of the .SS whose text is `heading` or starts with it and
        a space, or None when there is none."""
        body, found = [], False
        for (_, ss, kind, text) in self.lines:
            if kind in ("SH", "SS"):
                if found:
                    break
                found = kind == "SS" and heading_is(text, heading)
                continue
            if found:
                body.append(text)
        return "\n".join(body) if found else None

    def item(self, section, key):
        """The body of the .TP item under `section` whose tag starts with
        `key` (then a space, '=' or the end), or None."""
        body, found = [], False
        for (sh, _, kind, text) in self.lines:
            if kind in ("SH", "SS", "tag"):
                if found:
                    break
                found = (kind == "tag" and re.fullmatch(section, sh) is not None and
                         re.match(re.escape(key) + r"(\s|=|$)", text) is not None)
                continue
            if found:
                body.append(text)
        return " ".join(body) if found else None


def heading_is(text, name):
    """Whether subsection heading `text` is the synopsis of `name` ("isostack
    bench [--quick]...", not "isostack bench shm ...")."""
    if not text.startswith(name):
        return False
    rest = text[len(name):]
    if rest == "":
        return True
    return rest[0] == " " and (rest[1:2] in ("[", "-") or rest[1:2].isupper())


def synopsis_forms(help_text, name):
    """The forms of `name`'s own synopsis (the help's first paragraph): a
    form starts at "usage: isostack" or an indented "isostack"."""
    forms, cur = [], None
    for line in help_text.split("\n\n", 1)[0].splitlines():
        m = re.match(r"(usage:\s+|\s+)?(isostack .*)", line)
        if m and (m.group(1) or line.startswith("isostack")):
            cur = m.group(2)
            forms.append(cur)
        elif cur is not None:
            forms[-1] += " " + line.strip()
    return [f for f in forms if heading_is(f, "isostack " + name)]


def tag_words(tags):
    """Every word of every tag: "-h, --help" gives -h and --help."""
    words = set()
    for t in tags:
        words.update(w for w in re.split(r"[\s,|\[\]]+", t) if w)
    return words


def names_word(text, word):
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


# ---- what the code defines -------------------------------------------------

def help_options(help_text, name=None):
    """Options of a --help: its option lines (indented, starting with a
    dash: every dashed word before the description) and those of the
    synopsis forms of command `name`."""
    opts = set()
    for line in help_text.splitlines():
        m = re.match(r"\s+(-[^ ].*?)(\s{2,}|$)", line)
        if m:
            opts.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", m.group(1)))
    if name is not None:
        for form in synopsis_forms(help_text, name):
            opts.update(re.findall(r"\[(--?[A-Za-z][\w-]*)", form))
    return opts


def cli_help(*words):
    r = run([CLI] + list(words) + ["--help"])
    if r.returncode != 0:
        fail("isostack %s --help: exit %d: %s" % (" ".join(words), r.returncode, r.stderr.strip()))
    return r.stdout


def cli_commands():
    top = run([CLI, "--help"])
    if top.returncode != 0:
        fail("isostack --help: exit %d" % top.returncode)
    m = re.search(r"^commands:\n(.*?)\n\n", top.stdout, re.S | re.M)
    if not m:
        fail("isostack --help: no commands: section")
        return []
    return [line.split()[0] for line in m.group(1).splitlines() if line.strip()]


def c_function(source, name):
    """The body of C function `name` (from its definition to the first
    closing brace at the start of a line)."""
    m = re.search(r"^[a-z][^\n]*\b" + re.escape(name) + r"\(.*?^\}", source, re.S | re.M)
    return m.group(0) if m else ""


def config_c_keys():
    src = read(os.path.join(SRC, "daemon", "config.c"))
    keys = {}
    for func, section in (("daemon_set", "daemon"), ("port_set", "port")):
        body = c_function(src, func)
        found = re.findall(r'strcmp\(key, "([a-z_]+)"\)', body)
        if not found:
            fail("daemon/config.c: no strcmp(key, \"...\") in %s(): has the parser changed?" % func)
        for k in found:
            keys[k] = section
    table = re.search(r"long_opts\[\] = \{(.*?)\};", src, re.S)
    opts = set("--" + o for o in re.findall(r'\{\s*"([a-z-]+)",', table.group(1))) if table else set()
    if not opts:
        fail("daemon/config.c: no long_opts[] table")
    return keys, opts


def conf_file_keys():
    """Keys of daemon/isostackd.conf: {key: (section, value or None)}. The
    commented example sections count from their "# [port]" on."""
    keys, section, example = {}, None, None
    for line in read(os.path.join(SRC, "daemon", "isostackd.conf")).splitlines():
        s = line.strip()
        m = re.fullmatch(r"\[(\w+)\]", s)
        if m:
            section = m.group(1)
            continue
        m = re.fullmatch(r"#\s*\[(\w+)\]", s)
        if m:
            example = m.group(1)
            continue
        m = re.fullmatch(r"([a-z_]+)\s*=\s*(.*)", s)
        if m and section:
            keys[m.group(1)] = (section, m.group(2) or None)
            continue
        m = re.fullmatch(r"#\s*([a-z_]+)\s*=\s*(\S.*)", s)
        if m and example:
            keys.setdefault(m.group(1), (example, None))
    return keys


def isostat_options():
    src = read(os.path.join(SRC, "daemon", "isostat.c"))
    opts = set()
    m = re.search(r'getopt_long\(argc, argv, "([^"]+)"', src)
    if m:
        opts.update("-" + c for c in m.group(1) if c != ":")
    else:
        fail("daemon/isostat.c: no getopt_long option string")
    table = re.search(r"longopts\[\] = \{(.*?)\};", src, re.S)
    if table:
        opts.update("--" + o for o in re.findall(r'\{\s*"([a-z-]+)",', table.group(1)))
    else:
        fail("daemon/isostat.c: no longopts[] table")
    return opts


def env_vars(paths):
    found = set()
    for p in paths:
        found.update(re.findall(r'(?:getenv|env_flag)\("([A-Z_][A-Z0-9_]*)"\)', read(p)))
    return found


def c_files(folder, exclude=()):
    out = []
    for root, _, files in os.walk(os.path.join(SRC, folder)):
        out += [os.path.join(root, f) for f in files
                if f.endswith(".c") and not any(re.fullmatch(x, f) for x in exclude)]
    return sorted(out)


# ---- the checks -------------------------------------------------------------

def check_isostack(page):
    commands = cli_commands()
    if len(commands) < 5:
        fail("isostack --help lists only %d commands: %s" % (len(commands), commands))
    env = set()
    checked = 0
    todo = [[c] for c in commands]
    while todo:
        words = todo.pop(0)
        name = " ".join(words)
        text = cli_help(*words)
        env.update(re.findall(r"\bISOSTACK_[A-Z0-9_]+", text))
        body = page.subsection("isostack " + name)
        if body is None:
            fail("isostack(8): no subsection '.SS \"isostack %s ...\"' for the command" % name)
            continue
        for opt in sorted(help_options(text, name)):
            checked += 1
            if not names_word(body, opt):
                fail("isostack(8): 'isostack %s' section does not name its option %s" % (name, opt))
        if len(words) == 1:       # subcommands: "isostack NAME SUB ..." in the synopsis
            synopsis = text.split("\n\n", 1)[0]
            for sub in sorted(set(re.findall(r"isostack %s ([a-z][a-z0-9-]*)\b" % re.escape(name),
                                             synopsis))):
                todo.append(words + [sub])
    for var in sorted(env):
        if not names_word(page.text(), var):
            fail("isostack(8) does not name %s (a command's --help does)" % var)
    print("isostack(8): %d commands, %d options, %d variables checked"
          % (len(commands), checked, len(env)))


def check_isostackd(page, c_opts):
    daemon = os.path.join(BUILD, "daemon", "isostackd")
    r = run([daemon, "--help"])
    if r.returncode != 0:
        fail("isostackd --help: exit %d: %s" % (r.returncode, r.stderr.strip()))
    opts = help_options(r.stdout) | c_opts
    tags = tag_words(page.tags("OPTIONS"))
    for opt in sorted(opts):
        if opt not in tags:
            fail("isostackd(8): option %s has no item under OPTIONS" % opt)
    print("isostackd(8): %d options checked" % len(opts))


def check_isostat(page):
    r = run([os.path.join(BUILD, "daemon", "isostat"), "--help"])
    if r.returncode != 0:
        fail("isostat --help: exit %d" % r.returncode)
    usage = r.stdout.splitlines()[0] if r.stdout else ""
    opts = isostat_options() | set(re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", usage))
    tags = tag_words(page.tags("OPTIONS"))
    for opt in sorted(opts):
        if opt not in tags:
            fail("isostat(8): option %s has no item under OPTIONS" % opt)
    print("isostat(8): %d options checked" % len(opts))


def check_conf(page, c_keys):
    file_keys = conf_file_keys()
    keys = dict((k, s) for k, s in c_keys.items())
    for k, (s, _) in file_keys.items():
        if k in keys and keys[k] != s:
            fail("key %s is [%s] in daemon/isostackd.conf but parsed by config.c's %s_set()"
                 % (k, s, keys[k]))
        keys.setdefault(k, s)
    for k, s in sorted(keys.items()):
        section = re.escape("[%s]" % s) + r"( .*)?"
        body = page.item(section, k)
        if body is None:
            fail("isostackd.conf(5): key %s has no item in the [%s] section" % (k, s))
            continue
        value = file_keys.get(k, (s, None))[1]
        if value is not None and "Default: " + value not in body:
            fail("isostackd.conf(5): key %s does not say 'Default: %s' (daemon/isostackd.conf)"
                 % (k, value))
    print("isostackd.conf(5): %d keys checked (%d from config.c, %d from isostackd.conf)"
          % (len(keys), len(c_keys), len(file_keys)))


def check_env(pages):
    where = [
        ("libisosock.7", c_files("libisosock")),
        ("isostat.8", c_files("daemon", exclude=[r"(?!isostat).*"])),
        ("isostackd.8", c_files("daemon", exclude=[r"isostat.*\.c"])),
    ]
    n = 0
    for name, files in where:
        tags = tag_words(pages[name].tags("ENVIRONMENT"))
        for var in sorted(env_vars(files)):
            n += 1
            if var not in tags:
                fail("%s: %s (read by the code) has no item under ENVIRONMENT" % (name, var))
    print("environment: %d variables checked" % n)


def check_install_and_names(pages):
    build = read(os.path.join(MAN, "meson.build"))
    on_disk = sorted(f for f in os.listdir(MAN) if re.fullmatch(r".+\.[1-8]", f))
    for f in on_disk:
        if "'%s'" % f not in build:
            fail("man/meson.build does not install %s" % f)
        if f not in PAGES:
            fail("man/%s is not one of the pages this test checks" % f)
    for name, page in pages.items():
        title, section = name.rsplit(".", 1)
        if not page.th or page.th[0] != title.upper() or page.th[1] != section:
            fail("%s: .TH says %s, not %s %s" % (name, page.th[:2] if page.th else None,
                                                title.upper(), section))
        for ref, sec in re.findall(r"\b(isostack|isostackd|isostat|libisosock|isostackd\.conf)"
                                   r"\((\d)\)", page.text()):
            if "%s.%s" % (ref, sec) not in PAGES:
                fail("%s refers to %s(%s), which is no page of ours" % (name, ref, sec))


def check_render(name):
    path = os.path.join(MAN, name)
    env = {"MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat", "LC_ALL": "C.UTF-8"}
    r = run(["man", "--warnings=w", "-l", path], env=env)
    if r.returncode != 0 or r.stderr.strip():
        fail("man --warnings -l %s: exit %d, stderr: %s" % (name, r.returncode, r.stderr.strip()))
    if "NAME" not in r.stdout or len(r.stdout.splitlines()) < 20:
        fail("man -l %s: rendered %d lines, no NAME section" % (name, len(r.stdout.splitlines())))
    g = run(["groff", "-man", "-ww", "-z", path])
    if g.returncode != 0 or g.stderr.strip():
        fail("groff -man -ww -z %s: exit %d, stderr: %s" % (name, g.returncode, g.stderr.strip()))
    print("%s: rendered, %d lines, no warnings" % (name, len(r.stdout.splitlines())))


def main():
    for tool, pkg in (("man", "man-db"), ("groff", "groff-base")):
        if shutil.which(tool) is None:
            skip("no %s here (Debian package %s; isostack setup installs it)" % (tool, pkg))
    if not os.access(CLI, os.R_OK):
        skip("no isostack command at %s" % CLI)
    for prog in ("isostackd", "isostat"):
        if not os.access(os.path.join(BUILD, "daemon", prog), os.X_OK):
            skip("no %s in %s/daemon: build it first (isostack build)" % (prog, BUILD))
    missing = [p for p in PAGES if not os.path.exists(os.path.join(MAN, p))]
    if missing:
        fail("missing pages: %s" % ", ".join(missing))
        return 1
    pages = dict((p, Page(p)) for p in PAGES)
    c_keys, c_opts = config_c_keys()
    check_isostack(pages["isostack.8"])
    check_isostackd(pages["isostackd.8"], c_opts)
    check_isostat(pages["isostat.8"])
    check_conf(pages["isostackd.conf.5"], c_keys)
    check_env(pages)
    check_install_and_names(pages)
    for p in PAGES:
        check_render(p)
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("PASS: every command, option, key and variable has its page")
    return 0


if __name__ == "__main__":
    sys.exit(main())
