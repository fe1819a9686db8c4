#!/usr/bin/env bash
# Every program and library in the build tree must carry lwIP statically,
# compiled with our lwipopts.h; none may link Debian's liblwip.so (NO_SYS 0,
# a mutex per allocation). Fails if any ELF under BUILD links liblwip, or if
# the lwIP test binary does not define lwIP's TCP input itself.
set -euo pipefail
build=${1:?usage: check_no_liblwip.sh BUILD-DIR}
checked=0 bad=0

while IFS= read -r -d '' f; do
	head -c 4 "$f" | grep -q $'\x7fELF' || continue
	case $f in *.o|*.a) continue ;; esac
	checked=$((checked + 1))
	if grep -q liblwip <<<"$(ldd "$f" 2>/dev/null)"; then
		echo "FAIL: $f links $(ldd "$f" | grep liblwip)"
		bad=$((bad + 1))
	fi
done < <(find "$build" -type f -perm -u+x -print0)

lwip_test=$build/test/unit/tcpip/test_tcpip
if ! grep -qx "T tcp_input" <<<"$(nm "$lwip_test" | cut -c18-)"; then
	echo "FAIL: $lwip_test does not define tcp_input: lwIP is not linked statically"
	bad=$((bad + 1))
fi
echo "checked $checked ELF files under $build: $bad problem(s)"
[ "$checked" -gt 0 ] && [ "$bad" -eq 0 ]
