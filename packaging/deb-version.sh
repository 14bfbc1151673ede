#!/bin/sh
# Prints the Debian version of a build, from the output of
# `git describe --tags --always --dirty` (DESCRIBE) and the number of commits
# (COUNT, only used when there is no tag). Usage: deb-version.sh DESCRIBE [COUNT]
#
#   v1.2.3                -> 1.2.3
#   v1.2.3-rc.1           -> 1.2.3~rc.1              (before 1.2.3)
#   v1.2.3-4-gabc1234     -> 1.2.3+git4.gabc1234     (after 1.2.3)
#   abc1234 (no tag), 150 -> 0.0.0~git150.gabc1234   (before any tag; later commits sort higher)
#   ...-dirty             -> ....dirty, or +dirty after a bare tag (1.2.3+dirty)
#
# The package has no Debian revision, so the result may not contain "-".
set -eu

describe=${1:?usage: deb-version.sh DESCRIBE [COUNT]}
count=${2:-0}

v=${describe#v}
dirty=
case $v in
*-dirty)
	v=${v%-dirty}
	dirty=1
	;;
esac

if printf '%s\n' "$v" | grep -Eq '^[0-9a-f]{7,}$'; then
	# No tag: git describe --always gave an abbreviated commit.
	v="0.0.0~git$count.g$v"
else
	# A tag, perhaps followed by -N-gSHA (commits since it). In the tag, the
	# first "-" starts a pre-release (semver), which sorts before the release
	# with "~"; any other "-" becomes ".".
	since=
	if printf '%s\n' "$v" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
		since=$(printf '%s\n' "$v" | sed -E 's/^.*-([0-9]+)-(g[0-9a-f]+)$/+git\1.\2/')
		v=$(printf '%s\n' "$v" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
	fi
	v=$(printf '%s\n' "$v" | sed -e 's/-/~/' -e 's/-/./g')$since
fi
if [ -n "$dirty" ]; then
	case $v in
	*+* | *~git*) v="$v.dirty" ;;
	*) v="$v+dirty" ;;
	esac
fi

if ! printf '%s\n' "$v" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	echo "deb-version.sh: cannot make a Debian version of \"$describe\" (got \"$v\")" >&2
	exit 1
fi
printf '%s\n' "$v"
