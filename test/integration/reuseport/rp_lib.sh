# Shared by test_reuseport.sh and test_reuseport_udp.sh (sourced, after
# programs/lib.sh and stack_up).

# bindcheck_vs_linux APP "SHIM_ADDR/LINUX_ADDR PORT"...: APP's bindcheck
# (the bind rules case by case) under the shim, on each SHIM_ADDR, and on
# the peer's Linux, on the matching LINUX_ADDR, must print the same.
bindcheck_vs_linux() {
	local app=$1 where
	shift
	for where in "$@"; do
		set -- $where
		"$CLI" run --require -- python3 "$app" bindcheck "${1%/*}" "$2" \
			>"$tmp/bc_iso.out" 2>"$tmp/bc_iso.err" ||
			{ cat "$tmp/bc_iso.err"; fail "bindcheck under the shim"; }
		"$CLI" peer -- python3 "$app" bindcheck "${1#*/}" "$2" >"$tmp/bc_lnx.out" 2>&1 ||
			fail "bindcheck on Linux"
		echo "-- ${1%/*} (the peer's Linux: ${1#*/})"
		cat "$tmp/bc_iso.out"
		diff "$tmp/bc_lnx.out" "$tmp/bc_iso.out" || fail "bindcheck on ${1%/*}: not as on Linux"
	done
}
