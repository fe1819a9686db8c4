# isostack setup | build | test: from a fresh Debian 12 machine to a tested tree.
#
# setup installs Debian packages, derives deb-src entries from the machine's
# own apt sources (no host is named here), unpacks lwIP 2.1.3 from Debian's
# source package into .deps/lwip, and reserves 2 MiB hugepages. Every step
# checks first and does nothing when already done, so a second run takes
# seconds and changes nothing.

# Debian packages the build, the tests and the demo use.
ISOSTACK_PACKAGES="build-essential pkg-config meson ninja-build
	dpdk dpdk-dev libdpdk-dev libnuma-dev libcmocka-dev
	clang libclang-rt-14-dev
	iproute2 ethtool iputils-ping procps kmod xz-utils python3 curl
	tshark nginx-light wrk redis-server redis-tools memcached libmemcached-tools iperf3 socat
	python3-matplotlib python3-prometheus-client
	man-db groff-base"

# Debian's lwIP source: upstream 2.1.3 repacked without non-free files. The
# orig tarball is pinned by hash; the Debian patches (socket API, cmake,
# ppp, the Unix port) touch nothing we compile, so they are not applied.
LWIP_ORIG=lwip_2.1.3+dfsg1.orig.tar.xz
LWIP_ORIG_SHA256=0a8276d09fc4e97bbba2f953d74af2388fc2195ea156be9d7589e297a68fde24

summary_setup() { echo "install packages, lwIP source and hugepages (root; idempotent)"; }
help_setup() {
	cat <<EOF
usage: isostack setup [--no-hugepages]

Prepares this machine for building and running isostack; safe to run again.
  1. Installs the Debian packages isostack needs (only the missing ones):
     $(echo $ISOSTACK_PACKAGES)
  2. Enables deb-src entries derived from this machine's own apt sources
     (/etc/apt/sources.list.d/isostack-deb-src.sources) and unpacks lwIP
     2.1.3 from Debian's source package into .deps/lwip (source checkout only).
  3. Reserves ISOSTACK_HUGEPAGES (now $ISOSTACK_HUGEPAGES) 2 MiB hugepages
     through sysfs and mounts hugetlbfs on /dev/hugepages when missing; when
     none can be had, DPDK programs run with --no-huge and say so.

  --no-hugepages   skip step 3

examples:
  sudo isostack setup
  sudo ISOSTACK_HUGEPAGES=512 isostack setup
EOF
}

setup_packages() {
	local missing=() p

	for p in $ISOSTACK_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "packages: all present"
		return 0
	fi
	log "packages: installing ${missing[*]}"
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		"${missing[@]}" >/dev/null ||
		die "apt-get install failed for: ${missing[*]}"
}

# Writes deb-src twins of the machine's deb entries, in the same formats,
# so that `apt-get source` works. Returns 0 if it wrote anything, 1 when the
# machine already had source entries.
setup_deb_src() {
	local out=/etc/apt/sources.list.d/isostack-deb-src.sources
	local list=/etc/apt/sources.list.d/isostack-deb-src.list
	local f

	if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
		return 1
	fi
	: > "$out"
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -e "$f" ] && [ "$f" != "$out" ] || continue
		sed '/^Types:/s/\bdeb\b/deb-src/' "$f" >> "$out"
		echo >> "$out"
	done
	[ -s "$out" ] || rm -f "$out"
	if [ -f /etc/apt/sources.list ]; then
		sed -n 's/^deb \(.*\)$/deb-src \1/p' /etc/apt/sources.list > "$list"
		[ -s "$list" ] || rm -f "$list"
	fi
	log "apt: enabled source packages (derived from this machine's apt sources)"
	return 0
}

# What .deps/lwip must hold: the pinned orig tarball plus our patches, in
# order. Changing a patch changes the stamp, and the next build re-unpacks.
lwip_stamp_expected() {
	local p

	echo "$LWIP_ORIG_SHA256 $LWIP_ORIG"
	for p in "$ISOSTACK_SRC"/tcpip/patches/*.patch; do
		[ -e "$p" ] && echo "$(sha256sum "$p" | cut -d' ' -f1) $(basename "$p")"
	done
}

lwip_ready() {
	[ "$(cat "$ISOSTACK_SRC/.deps/lwip/.isostack-stamp" 2>/dev/null)" = "$(lwip_stamp_expected)" ]
}

# Fetches Debian's lwip source package (root: apt) unless cached, checks its
# hash, unpacks it into .deps/lwip and applies tcpip/patches/*.patch.
setup_lwip() {
	local deps=$ISOSTACK_SRC/.deps
	local cache=$deps/cache
	local sum tmp p

	if lwip_ready; then
		log "lwip: 2.1.3 source present in .deps/lwip"
		return 0
	fi
	mkdir -p "$cache"
	if [ ! -f "$cache/$LWIP_ORIG" ]; then
		[ "$(id -u)" -eq 0 ] || die "lwIP source missing: run 'sudo isostack setup' first"
		if setup_deb_src || ! apt-cache showsrc lwip >/dev/null 2>&1; then
			apt-get update -q >/dev/null
		fi
		log "lwip: fetching Debian's lwip source package"
		(cd "$cache" && apt-get -q -o APT::Sandbox::User=root \
			source --download-only lwip >/dev/null) ||
			die "apt-get source lwip failed: are deb-src entries reachable?"
	fi
	[ -f "$cache/$LWIP_ORIG" ] ||
		die "Debian's lwip source is not $LWIP_ORIG (found: $(ls "$cache"))"
	sum=$(sha256sum "$cache/$LWIP_ORIG" | cut -d' ' -f1)
	[ "$sum" = "$LWIP_ORIG_SHA256" ] ||
		die "$LWIP_ORIG has sha256 $sum, expected $LWIP_ORIG_SHA256"
	tmp=$(mktemp -d "$deps/lwip.XXXXXX")
	tar -xJf "$cache/$LWIP_ORIG" -C "$tmp" --strip-components=1
	for p in "$ISOSTACK_SRC"/tcpip/patches/*.patch; do
		[ -e "$p" ] || continue
		patch -s -p1 -d "$tmp" < "$p" ||
			{ rm -rf "$tmp"; die "lwip: patch $(basename "$p") does not apply"; }
		log "lwip: applied $(basename "$p")"
	done
	lwip_stamp_expected > "$tmp/.isostack-stamp"
	rm -rf "$deps/lwip"
	mv "$tmp" "$deps/lwip"
	log "lwip: unpacked 2.1.3 into .deps/lwip"
}

setup_hugepages() {
	local dir=/sys/kernel/mm/hugepages/hugepages-2048kB
	local nr

	if [ ! -w "$dir/nr_hugepages" ]; then
		warn "hugepages: no 2 MiB hugepage support here; DPDK will run with --no-huge"
		return 0
	fi
	nr=$(cat "$dir/nr_hugepages")
	if [ "$nr" -lt "$ISOSTACK_HUGEPAGES" ]; then
		echo "$ISOSTACK_HUGEPAGES" > "$dir/nr_hugepages" 2>/dev/null || true
		nr=$(cat "$dir/nr_hugepages")
	fi
	if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
		mkdir -p /dev/hugepages
		mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages 2>/dev/null ||
			warn "hugepages: cannot mount hugetlbfs on /dev/hugepages"
	fi
	if [ "$(hugepage_mode)" = huge ]; then
		log "hugepages: $nr x 2 MiB reserved, hugetlbfs on /dev/hugepages"
	else
		warn "hugepages: none available ($nr reserved); DPDK will run with --no-huge"
	fi
}

cmd_setup() {
	local huge=1

	while [ $# -gt 0 ]; do
		case $1 in
		--no-hugepages) huge=0 ;;
		-*) usage_error setup "unknown option '$1'" ;;
		*) usage_error setup "unexpected argument '$1'" ;;
		esac
		shift
	done
	need_root setup
	setup_packages
	[ "$ISOSTACK_MODE" = source ] && setup_lwip
	[ $huge -eq 1 ] && setup_hugepages
	log "setup: done"
}

summary_build() { echo "configure and compile with meson/ninja (source checkout)"; }
help_build() {
	cat <<EOF
usage: isostack build [--builddir DIR] [--clang] [--sanitize] [--fuzz] [-- MESON-OPTIONS]

Configures DIR (default: build, or \$ISOSTACK_BUILD; with --sanitize
build-asan, with --clang build-clang, with --fuzz build-fuzz, as
'isostack test' uses them) with meson if needed and compiles it with
ninja. --clang builds with clang; --sanitize adds
-Db_sanitize=address,undefined; --fuzz is clang with both sanitizers and
the libFuzzer targets of test/fuzz (-Dfuzz=true). Options after -- go to
'meson setup'. A directory configured before keeps its options: the
flags only apply when it is configured.
Needs the lwIP source: run 'isostack setup' first (build does it when root).

  --builddir DIR   the build directory
  --clang          compile with clang (default directory build-clang)
  --sanitize       ASan and UBSan (default directory build-asan)
  --fuzz           the fuzz targets, clang, ASan and UBSan (build-fuzz)

examples:
  isostack build
  isostack build --sanitize
  isostack build --builddir /tmp/b -- -Dtests=false
EOF
}

# The fuzz build (test/fuzz, docs/reliability.md): clang, libFuzzer, ASan, UBSan.
FUZZ_MESON_OPTS="-Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false"
FUZZ_TARGETS="test/fuzz/fuzz_netif test/fuzz/fuzz_backend test/fuzz/fuzz_ctl"

# build_tree DIR [meson setup options...]: configure once, then compile.
build_tree() {
	local dir=$1
	shift

	lwip_ready || setup_lwip
	if [ ! -f "$dir/build.ninja" ]; then
		log "build: configuring $dir"
		meson setup "$dir" "$ISOSTACK_SRC" "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log" >&2
			die "meson setup failed for $dir"
		}
		rm -f "$dir.setup.log"
	fi
	log "build: compiling $dir"
	ninja -C "$dir" >"$dir.ninja.log" 2>&1 || {
		tail -40 "$dir.ninja.log" >&2
		die "build failed in $dir (full log: $dir.ninja.log)"
	}
	rm -f "$dir.ninja.log"
}

cmd_build() {
	local dir="" cc="" opts=() variant=""

	while [ $# -gt 0 ]; do
		case $1 in
		--builddir) need_value build "$@"; dir=$2; shift ;;
		--clang) cc=clang; variant=${variant:-clang} ;;
		--sanitize) opts+=(-Db_sanitize=address,undefined -Db_lundef=false); variant=asan ;;
		--fuzz) cc=clang; opts+=($FUZZ_MESON_OPTS); variant=fuzz ;;
		--) shift; opts+=("$@"); break ;;
		-*) usage_error build "unknown option '$1'" ;;
		*) usage_error build "unexpected argument '$1'" ;;
		esac
		shift
	done
	need_source build
	# A sanitizer or clang build in the gcc tree would silently keep the
	# tree's old options: each has its own directory unless one is named.
	[ -n "$dir" ] || dir=$ISOSTACK_BUILD${variant:+-$variant}
	CC=${cc:-${CC:-cc}} build_tree "$dir" "${opts[@]}"
	log "build: done ($dir)"
}

summary_test() { echo "run the whole test suite: gcc, ASan/UBSan and clang builds"; }
help_test() {
	cat <<EOF2
usage: isostack test [--quick] [--suite NAME]... [-- MESON-TEST-OPTIONS]

The README's test command, and what CI runs. As root it first runs
'isostack setup'. Then:
  1. build/        (gcc)            suites unit and integration
  2. build-asan/   (gcc, -Db_sanitize=address,undefined)   suite unit, and
     suite sanitize as root: the short soak (test/integration/soak/),
     isostackd and the shim under ASan, LeakSanitizer at the daemon's exit
  3. build-clang/  (clang)          suite unit
  4. build-fuzz/   (clang, libFuzzer, ASan/UBSan)  suite fuzz: each fuzz
     target of test/fuzz for FUZZ_SECONDS (default 60); skipped when clang
     cannot link -fsanitize=fuzzer
and prints 'N passed, N failed, N skipped' over all of them. Integration
tests need root; without it they report SKIPPED with the reason.
--quick runs step 1 with the unit suite only. --suite picks the suites of
step 1. The perf suite (benchmarks) never runs here: see 'isostack bench'.

  --quick          step 1 only, suite unit
  --suite NAME     a suite of step 1 (unit, integration, wip); repeatable
  -- OPTIONS       passed to every 'meson test'

examples:
  sudo isostack test
  isostack test --quick -- --repeat 3
EOF2
}

# Adds one meson test run's results (from its testlog.json) to the totals.
TEST_PASSED=0 TEST_FAILED=0 TEST_SKIPPED=0
tally_tests() {
	local json=$1/meson-logs/testlog.json counts

	[ -f "$json" ] || { TEST_FAILED=$((TEST_FAILED + 1)); return; }
	counts=$(python3 - "$json" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r in ("OK", "EXPECTEDFAIL"): p += 1
    elif r == "SKIP": s += 1
    else: f += 1
print(p, f, s)
PY
)
	set -- $counts
	TEST_PASSED=$((TEST_PASSED + $1))
	TEST_FAILED=$((TEST_FAILED + $2))
	TEST_SKIPPED=$((TEST_SKIPPED + $3))
}

# run_suites DIR SUITE... [-- OPTIONS]: meson test, results tallied.
run_suites() {
	local dir=$1 args=()
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		args+=(--suite "$1")
		shift
	done
	[ "${1:-}" = -- ] && shift
	log "test: $dir: suites ${args[*]//--suite /}"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "${args[@]}" "$@" || true
	tally_tests "$dir"
}

# Step 4 of cmd_test: only the fuzz targets are compiled (the rest of the
# tree is tested by steps 1-3), then suite fuzz runs them.
test_fuzz() {
	local dir=$1
	shift

	if [ ! -f "$dir/build.ninja" ]; then
		CC=clang meson setup "$dir" "$ISOSTACK_SRC" $FUZZ_MESON_OPTS >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log" >&2
			die "meson setup failed for $dir"
		}
		rm -f "$dir.setup.log"
	fi
	if ! grep -qs 'fuzz_netif' "$dir/build.ninja"; then
		warn "test: fuzz: clang cannot link -fsanitize=fuzzer here: suite fuzz skipped"
		return 0
	fi
	log "build: compiling the fuzz targets in $dir"
	# shellcheck disable=SC2086
	ninja -C "$dir" $FUZZ_TARGETS >"$dir.ninja.log" 2>&1 || {
		tail -40 "$dir.ninja.log" >&2
		die "build failed in $dir (full log: $dir.ninja.log)"
	}
	rm -f "$dir.ninja.log"
	run_suites "$dir" fuzz -- --no-rebuild "$@"
}

cmd_test() {
	local quick=0 suites=() extra=() src=$ISOSTACK_SRC

	while [ $# -gt 0 ]; do
		case $1 in
		--quick) quick=1 ;;
		--suite) need_value test "$@"; suites+=("$2"); shift ;;
		--) shift; extra=("$@"); break ;;
		-*) usage_error test "unknown option '$1'" ;;
		*) usage_error test "unexpected argument '$1'" ;;
		esac
		shift
	done
	need_source test
	if [ "$(id -u)" -eq 0 ]; then
		cmd_setup
	else
		warn "test: not root: skipping setup; integration tests will be skipped"
	fi
	[ ${#suites[@]} -gt 0 ] || suites=(unit integration)
	[ $quick -eq 1 ] && suites=(unit)

	build_tree "$ISOSTACK_BUILD"
	run_suites "$ISOSTACK_BUILD" "${suites[@]}" -- "${extra[@]}"
	if [ $quick -eq 0 ]; then
		build_tree "$src/build-asan" -Db_sanitize=address,undefined -Db_lundef=false
		# sanitize: tests that start isostackd (root) in this build.
		ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
			run_suites "$src/build-asan" unit $([ "$(id -u)" -eq 0 ] && echo sanitize) -- "${extra[@]}"
		CC=clang build_tree "$src/build-clang"
		run_suites "$src/build-clang" unit -- "${extra[@]}"
		test_fuzz "$src/build-fuzz" "${extra[@]}"
	fi
	echo
	echo "$TEST_PASSED passed, $TEST_FAILED failed, $TEST_SKIPPED skipped"
	[ "$TEST_FAILED" -eq 0 ]
}
