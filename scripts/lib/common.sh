# Helpers shared by every isostack subcommand (sourced by scripts/isostack).
#
# Each area file in this folder defines, for every subcommand NAME:
#   summary_NAME   one line for `isostack --help`
#   help_NAME      the full text for `isostack NAME --help`
#   cmd_NAME       the command itself; returns non-zero on failure
# Only user commands are named cmd_*: `isostack --help` lists every one of
# them. A helper that is no command takes its area's prefix (demo_, net_).
# help_NAME opens with its synopsis (from "usage:" to the first blank line),
# which usage_error repeats, and ends with an "example:" section.

ISOSTACK_HUGEPAGES=${ISOSTACK_HUGEPAGES:-1024}   # 2 MiB pages to reserve

log() { printf 'isostack: %s\n' "$*" >&2; }
warn() { printf 'isostack: warning: %s\n' "$*" >&2; }
die() { printf 'isostack: error: %s\n' "$*" >&2; exit 1; }

# The synopsis of command NAME ("bench conns" for a subcommand): the
# opening paragraph of its help.
usage_of() {
	"help_${1// /_}" | sed '/^$/,$d'    # reads it all: no SIGPIPE
}

# usage_error NAME MESSAGE: a mistake on NAME's command line: one line and
# NAME's synopsis on stderr, exit status 2 (as getopt-style tools do).
usage_error() {
	local name=$1
	shift
	printf 'isostack %s: %s\n' "$name" "$*" >&2
	usage_of "$name" >&2
	exit 2
}

# need_value NAME OPTION ARGS...: OPTION (ARGS are the words after it) has
# its value, or NAME's command line is wrong.
need_value() {
	if [ $# -lt 3 ] || [ -z "$3" ]; then
		usage_error "$1" "option '$2' needs a value"
	fi
}

need_root() {
	[ "$(id -u)" -eq 0 ] || die "'isostack $1' needs root (namespaces, hugepages, apt); run it with sudo"
}

need_source() {
	[ "$ISOSTACK_MODE" = source ] ||
		die "'isostack $1' works in a source checkout; this is an installed copy"
}

# The hugepage mode everything DPDK-based uses: prints "huge" when 2 MiB
# pages are reserved and hugetlbfs is mounted, "nohuge" otherwise.
hugepage_mode() {
	local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
	local free=/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages

	if [ -r "$nr" ] && [ "$(cat "$free" 2>/dev/null || echo 0)" -gt 0 ] &&
	   grep -qs ' hugetlbfs ' /proc/mounts; then
		echo huge
	else
		echo nohuge
	fi
}

# EAL arguments for the memory mode above: nothing, or --no-huge.
eal_mem_args() {
	if [ "$(hugepage_mode)" = huge ]; then
		echo ""
	else
		echo "--no-huge"
	fi
}
