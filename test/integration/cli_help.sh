#!/usr/bin/env bash
# The isostack command line (issue 16): what `isostack --help` lists, each
# command's --help, and how a mistake on the command line is answered.
#
# The commands come from `isostack --help` itself and the subcommands from
# each command's synopsis ("isostack bench conns ..."), so a new one is
# checked without touching this file; a fixed list makes sure none of the
# expected ones went missing. For each command and subcommand:
#   --help and -h   exit 0, "usage: isostack NAME" first, an "example:" or
#                   "examples:" section with an "isostack NAME" line, and
#                   nothing on stderr;
#   an unknown option   exit 2, nothing on stdout, on stderr exactly one
#                   error line "isostack NAME: unknown option '...'" then
#                   the synopsis ("usage: isostack NAME ...");
#   each option the synopsis shows with a value, given without one: the
#                   same, with "option '--x' needs a value".
# No root, daemon or namespace: every call must end in the option parser.
# As root, the calls run as nobody, so that a parser which let a command
# through could not start anything (need_root stops it, and this fails).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ISOSTACK_CLI=${ISOSTACK_CLI:-$here/../../scripts/isostack}
EXPECTED="setup build test demo up run peer down status bench"
EXPECTED_SUB="bench:shm bench:programs bench:conns bench:soak"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
# On stderr and in a file: check_command runs in $(...) and a pipe.
fail() { echo "FAIL: $*" >&2; echo "$*" >>"$tmp/failed"; }

[ -r "$ISOSTACK_CLI" ] || { echo "SKIP: no isostack command at $ISOSTACK_CLI"; exit 77; }
as_user=()
if [ "$(id -u)" -eq 0 ]; then
	command -v setpriv >/dev/null ||
		{ echo "SKIP: as root this needs setpriv (util-linux) to drop to nobody"; exit 77; }
	as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
	"${as_user[@]}" test -r "$ISOSTACK_CLI" ||
		{ echo "SKIP: nobody cannot read $ISOSTACK_CLI"; exit 77; }
fi

# cli ARGS...: runs isostack; its stdout, stderr and status land in
# $tmp/out, $tmp/err and $rc. The timeout only bounds a broken parser.
cli() {
	rc=0
	(cd "$tmp" && "${as_user[@]}" env ISOSTACK_NS_PREFIX=clihelp$$ \
		ISOSTACK_STATE_DIR="$tmp/state" timeout 60 "$ISOSTACK_CLI" "$@") \
		>"$tmp/out" 2>"$tmp/err" </dev/null || rc=$?
}

# check_help NAME...: `isostack NAME... --help` and -h (see the top).
check_help() {
	local name="$*" flag

	for flag in --help -h; do
		cli "$@" "$flag"
		[ "$rc" -eq 0 ] || fail "isostack $name $flag: exit $rc"
		[ ! -s "$tmp/err" ] || fail "isostack $name $flag: stderr: $(head -3 "$tmp/err")"
		head -1 "$tmp/out" | grep -q "^usage: isostack $name\( \|\$\)" ||
			fail "isostack $name $flag: first line is not 'usage: isostack $name': $(head -1 "$tmp/out")"
		sed -n '/^examples\?:$/,$p' "$tmp/out" | grep -q "^  .*isostack $name\( \|\$\)" ||
			fail "isostack $name $flag: no example: or examples: section with an 'isostack $name' line"
		grep -q "command not found" "$tmp/out" &&
			fail "isostack $name $flag: 'command not found' in its help"
	done
	cp "$tmp/out" "$tmp/help"
}

# check_mistake WHAT NAME... -- ARGS...: isostack NAME... ARGS must exit 2
# with the one line "isostack NAME...: WHAT" and then NAME's synopsis.
check_mistake() {
	local what=$1 name=()
	shift
	while [ "$1" != -- ]; do name+=("$1"); shift; done
	shift
	cli "${name[@]}" "$@"
	[ "$rc" -eq 2 ] || fail "isostack ${name[*]} $*: exit $rc, not 2"
	[ ! -s "$tmp/out" ] || fail "isostack ${name[*]} $*: stdout: $(head -3 "$tmp/out")"
	[ "$(sed -n 1p "$tmp/err")" = "isostack ${name[*]}: $what" ] ||
		fail "isostack ${name[*]} $*: first stderr line is not 'isostack ${name[*]}: $what': $(sed -n 1p "$tmp/err")"
	sed -n 2p "$tmp/err" | grep -q "^usage: isostack ${name[*]}\( \|\$\)" ||
		fail "isostack ${name[*]} $*: second stderr line is not its usage: $(sed -n 2p "$tmp/err")"
}

# The synopsis forms of a help text in $tmp/help, one per line (a form
# starts at "usage: isostack" or an indented "isostack", continued by
# further indented lines).
synopsis_forms() {
	sed '/^$/,$d' "$tmp/help" | awk '
		/^(usage: +)?isostack / || /^ +isostack / { if (f != "") print f; f = $0; next }
		{ f = f " " $0 }
		END { if (f != "") print f }' | sed 's/^usage: *//; s/^ *//; s/  */ /g'
}

# check_command NAME...: help, an unknown option and every option's value.
check_command() {
	local label="$*" form opt

	check_help "$@"
	check_mistake "unknown option '--no-such-option'" "$@" -- --no-such-option
	synopsis_forms | while read -r form; do
		# Only NAME's own forms: "isostack NAME" then an option or nothing.
		case ${form#isostack "$label"} in
		"$form") continue ;;
		""|" ["*|" -"*) ;;
		*) continue ;;
		esac
		grep -o '\[--[a-z][a-z0-9-]* [^]]*\]' <<<"$form" | sed 's/^\[\(--[^ ]*\) .*/\1/' |
			sort -u >"$tmp/valued"
		while read -r opt; do
			check_mistake "option '$opt' needs a value" "$@" -- "$opt"
			echo "$label $opt" >>"$tmp/checked"
		done <"$tmp/valued"
	done
	# Subcommands: "isostack NAME SUB" forms with SUB a lower-case word.
	synopsis_forms | sed -n "s/^isostack $label \([a-z][a-z0-9-]*\)\( .*\)\?\$/\1/p" | sort -u
}

echo "== isostack --help"
cli --help
[ "$rc" -eq 0 ] || fail "isostack --help: exit $rc"
[ ! -s "$tmp/err" ] || fail "isostack --help: stderr: $(head -3 "$tmp/err")"
grep -q "command not found" "$tmp/out" "$tmp/err" && fail "isostack --help: 'command not found'"
cp "$tmp/out" "$tmp/top"
cat "$tmp/top"
for args in -h help ""; do
	cli $args
	if [ "$rc" -ne 0 ] || ! cmp -s "$tmp/out" "$tmp/top" || [ -s "$tmp/err" ]; then
		fail "isostack ${args:-(no arguments)}: not the same as isostack --help (exit $rc)"
	fi
done

# The command list: "  NAME  SUMMARY" lines after "commands:". Each must
# have a summary; a name with no summary (or with an underscore) is an
# internal helper showing through.
sed -n '/^commands:$/,/^$/p' "$tmp/top" | sed '1d;/^$/d' >"$tmp/list"
[ -s "$tmp/list" ] || fail "isostack --help: no commands: section"
commands=()
while read -r c summary; do
	commands+=("$c")
	[ -n "$summary" ] || fail "isostack --help: '$c' has no summary (an internal helper?)"
	case $c in *_*|*[!a-z0-9-]*) fail "isostack --help: '$c' does not look like a user command" ;; esac
done <"$tmp/list"
for c in $EXPECTED; do
	printf '%s\n' "${commands[@]}" | grep -qx "$c" || fail "isostack --help does not list '$c'"
done

echo "== an unknown command"
cli no-such-command
[ "$rc" -eq 2 ] || fail "isostack no-such-command: exit $rc, not 2"
[ "$(sed -n 1p "$tmp/err")" = "isostack: unknown command 'no-such-command'" ] ||
	fail "isostack no-such-command: first stderr line: $(sed -n 1p "$tmp/err")"
sed -n 2p "$tmp/err" | grep -q '^usage: isostack ' ||
	fail "isostack no-such-command: second stderr line is not the usage"

: >"$tmp/checked"
for c in "${commands[@]}"; do
	echo "== isostack $c"
	for sub in $(check_command "$c"); do
		echo "== isostack $c $sub"
		echo "$c:$sub" >>"$tmp/subs"
		check_command "$c" "$sub" >/dev/null
	done
done
for s in $EXPECTED_SUB; do
	grep -qx "$s" "$tmp/subs" 2>/dev/null || fail "isostack ${s%%:*} --help shows no '${s#*:}' subcommand"
done
# A known option with a value, so the parsing of forms cannot go quiet.
grep -qx "up --set" "$tmp/checked" || fail "'isostack up --set' (no value) was not checked"
echo "options checked without their value: $(wc -l <"$tmp/checked")"

if [ -s "$tmp/failed" ]; then
	echo "$(wc -l <"$tmp/failed") failures"
	exit 1
fi
echo "PASS: ${#commands[@]} commands and their subcommands"
