"""The ``fetch.sh`` of a plan: a POSIX shell script that fetches every blob with curl.

The script is for a download team that may not run sneaker: it needs a POSIX
``sh``, ``curl``, and the base tools ``sed``, ``tr``, ``wc``, ``mkdir``, ``mv``
and ``rm``; ``sha256sum`` is used when present. For each blob it

- skips a file already complete under ``blobs/sha256/<hex>`` (and checked);
- downloads into ``<hex>.part`` with ``curl -C -``, so an interrupted run
  resumes where it stopped; a server that cannot resume restarts the blob;
- when the registry answers 401, reads its ``WWW-Authenticate: Bearer``
  challenge (realm, service, scope) with sed, asks the realm for a token
  with curl (anonymously, or with ``SNEAKER_USER``/``SNEAKER_PASSWORD``),
  takes ``token`` or ``access_token`` out of the JSON with sed, and retries;
  a ``Basic`` challenge uses those variables directly;
- follows redirects (``-L``) with curl's default of not sending credentials
  to another host;
- checks size and (with sha256sum) digest, renames ``.part`` to the final
  name only then, and deletes and reports a file whose digest is wrong.

Tokens and passwords go to curl in a config file (``-K``) in a private
temporary directory, never on a command line where ``ps`` would show them.
The exit status is 0 only when every blob is present and checked.

:func:`render_fetch_script` is pure: the same plan gives the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["FetchItem", "render_fetch_script"]

# what may appear inside the single-quoted arguments of the generated calls
_SAFE = re.compile(r"^[A-Za-z0-9._~:/@\[\]%+=,-]+$")


@dataclass(frozen=True)
class FetchItem:
    """One blob for the script: the repository it is fetched from and where it goes."""

    registry: str
    repository: str
    url: str
    hex: str
    size: int

    @property
    def key(self) -> str:
        return f"{self.registry}/{self.repository}"


def _quote(value: str) -> str:
    if not _SAFE.match(value):
        raise ValueError(f"unsafe value for fetch.sh: {value!r}")
    return f"'{value}'"


_HEADER = """#!/bin/sh
# fetch.sh: fetches the blobs of this sneaker plan with curl (written by sneaker {version}).
#
#   sh fetch.sh [DIR]
#
# Every blob goes to DIR/blobs/sha256/<hex> (DIR defaults to this script's
# directory). Run it again after an interruption: finished files are kept and
# partial ones (<hex>.part) resume. Each file is checked against its size and,
# when sha256sum is installed, its sha256 digest; a file that does not match is
# deleted and reported. Exit status: 0 when all {count} blobs ({size} bytes) are
# present and checked, 1 otherwise.
#
# Needs: sh, curl, sed, tr, wc, mkdir, mv, rm (sha256sum when present).
# Anonymous registry tokens are fetched automatically; for private images set
# SNEAKER_USER and SNEAKER_PASSWORD. curl honours HTTPS_PROXY, NO_PROXY and
# CURL_CA_BUNDLE as usual.
"""

_BODY = r"""
set -u

case $0 in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
target=${1:-$here}
store=$target/blobs/sha256

if ! command -v curl >/dev/null 2>&1; then
  echo "fetch.sh: curl is not installed" >&2
  exit 2
fi
check_digest=yes
if ! command -v sha256sum >/dev/null 2>&1; then
  check_digest=no
  echo "fetch.sh: sha256sum not found: files are checked by size only" \
    "(sneaker assemble checks every digest)" >&2
fi

mkdir -p "$store" || exit 2
tmpd=$target/.fetch-tmp.$$
(umask 077 && mkdir "$tmpd") || exit 2
trap 'rm -rf "$tmpd"' EXIT
trap 'exit 130' INT TERM HUP
: >"$tmpd/none.conf"

www_auth='^[Ww][Ww][Ww]-[Aa][Uu][Tt][Hh][Ee][Nn][Tt][Ii][Cc][Aa][Tt][Ee]:[[:space:]]*'
failed=0
fetched=0
present=0
auth_key=
auth_conf=$tmpd/none.conf
probed_key=
denied_key=

say() {
  printf '%s\n' "$*"
}

complain() {
  printf 'fetch.sh: %s\n' "$*" >&2
}

size_of() {
  if [ -f "$1" ]; then
    echo $(($(wc -c <"$1")))
  else
    echo -1
  fi
}

digest_ok() {
  [ "$check_digest" = yes ] || return 0
  sum=$(sha256sum <"$1") || return 1
  [ "${sum%% *}" = "$2" ]
}

conf_escape() {
  printf '%s' "$1" | sed 's/[\\"]/\\&/g'
}

user_line() {
  printf 'user = "%s:%s"\n' "$(conf_escape "${SNEAKER_USER:-}")" \
    "$(conf_escape "${SNEAKER_PASSWORD:-}")"
}

# the value of parameter $1 (a case-insensitive sed pattern) of the challenge in $challenge
challenge_param() {
  printf '%s\n' "$challenge" |
    sed 's/,[[:space:]]*\([A-Za-z][A-Za-z0-9_-]*=\)/\
\1/g' |
    sed -n "s/^[[:space:]]*$1=\"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}[[:space:]]*\$/\\1/p" |
    sed -n 1p
}

# get credentials for $key after a 401 whose headers are in $1; 0 when there is something to try
authenticate() {
  challenge=$(tr -d '\r' <"$1" |
    sed -n "s/${www_auth}[Bb][Ee][Aa][Rr][Ee][Rr][[:space:]][[:space:]]*//p" |
    sed -n 1p)
  if [ -z "$challenge" ]; then
    if ! has_basic "$1"; then
      complain "$key: the registry answered 401 without a Bearer or Basic challenge"
      return 1
    fi
    if [ -z "${SNEAKER_USER:-}" ]; then
      complain "$key: the registry asks for a user name and password:" \
        "set SNEAKER_USER and SNEAKER_PASSWORD"
      return 1
    fi
    if [ "$auth_key" = "$key" ] && [ "$auth_conf" = "$tmpd/auth.conf" ]; then
      return 1 # these credentials were refused already
    fi
    user_line >"$tmpd/auth.conf"
    auth_conf=$tmpd/auth.conf
    auth_key=$key
    return 0
  fi
  realm=$(challenge_param '[Rr][Ee][Aa][Ll][Mm]')
  service=$(challenge_param '[Ss][Ee][Rr][Vv][Ii][Cc][Ee]')
  scope=$(challenge_param '[Ss][Cc][Oo][Pp][Ee]')
  [ -n "$scope" ] || scope="repository:${key#*/}:pull"
  if [ -z "$realm" ]; then
    complain "$key: the registry's challenge names no realm"
    return 1
  fi
  : >"$tmpd/token.conf"
  [ -z "${SNEAKER_USER:-}" ] || user_line >"$tmpd/token.conf"
  if [ -n "$service" ]; then
    set -- --data-urlencode "service=$service"
  else
    set --
  fi
  tcode=$(curl -gsL --retry 3 --connect-timeout 30 -K "$tmpd/token.conf" -G "$@" \
    --data-urlencode "scope=$scope" -o "$tmpd/token.json" -w '%{http_code}' "$realm" \
    2>"$tmpd/curl.err")
  trc=$?
  if [ "$trc" -ne 0 ]; then
    complain "$key: cannot reach the token service at $realm (curl exit $trc):" \
      "$(sed -n 1p "$tmpd/curl.err")"
    return 1
  fi
  if [ "$tcode" != 200 ]; then
    if [ -n "${SNEAKER_USER:-}" ]; then
      why="it refused the credentials in SNEAKER_USER and SNEAKER_PASSWORD"
    else
      why="set SNEAKER_USER and SNEAKER_PASSWORD for private images"
    fi
    complain "$key: the token service at $realm answered HTTP $tcode: $why"
    return 1
  fi
  body=$(tr -d '\r\n' <"$tmpd/token.json")
  token=$(printf '%s\n' "$body" |
    sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  if [ -z "$token" ]; then
    token=$(printf '%s\n' "$body" |
      sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  fi
  if [ -z "$token" ]; then
    complain "$key: the token service at $realm answered without a token"
    return 1
  fi
  printf 'header = "Authorization: Bearer %s"\n' "$(conf_escape "$token")" >"$tmpd/auth.conf"
  auth_conf=$tmpd/auth.conf
  auth_key=$key
  return 0
}

has_basic() {
  basic=$(tr -d '\r' <"$1" |
    sed -n "s/${www_auth}[Bb][Aa][Ss][Ii][Cc]\\([[:space:]].*\\)\\{0,1\\}\$/basic/p" |
    sed -n 1p)
  [ -n "$basic" ]
}

current_conf() {
  if [ "$auth_key" = "$key" ]; then
    printf '%s\n' "$auth_conf"
  else
    printf '%s\n' "$tmpd/none.conf"
  fi
}

# ask once per repository, before downloading, whether the registry wants a token
probe() {
  [ "$probed_key" = "$key" ] && return 0
  probed_key=$key
  [ "$auth_key" = "$key" ] && return 0
  code=$(curl -gsI --retry 3 --connect-timeout 30 -K "$tmpd/none.conf" -D "$tmpd/headers" \
    -o /dev/null -w '%{http_code}' "$url" 2>/dev/null)
  if [ "$code" = 401 ]; then
    authenticate "$tmpd/headers" || return 1
  fi
  return 0
}

# fetch KEY URL HEX SIZE
fetch() {
  key=$1
  url=$2
  hex=$3
  size=$4
  final=$store/$hex
  part=$final.part
  if [ -f "$final" ]; then
    if [ "$(size_of "$final")" = "$size" ] && digest_ok "$final" "$hex"; then
      present=$((present + 1))
      return 0
    fi
    complain "sha256:$hex: the file already there is damaged: fetching it again"
    rm -f "$final"
  fi
  if [ "$denied_key" = "$key" ]; then
    failed=$((failed + 1))
    return 1
  fi
  probe || {
    denied_key=$key
    failed=$((failed + 1))
    return 1
  }
  attempts=0
  renewed=no
  restarted=no
  while [ "$attempts" -lt 6 ]; do
    attempts=$((attempts + 1))
    have=$(size_of "$part")
    if [ "$have" -gt "$size" ]; then
      rm -f "$part"
      have=-1
    fi
    if [ "$have" -lt "$size" ]; then
      if [ "$have" -gt 0 ]; then
        say "resuming sha256:$hex at $have of $size bytes"
      elif [ "$attempts" -eq 1 ]; then
        say "fetching sha256:$hex ($size bytes) from $url"
      fi
      if [ "$size" -eq 0 ]; then
        : >"$part"
        code=200
        rc=0
      else
        code=$(curl -gsSfL --retry 3 --connect-timeout 30 --speed-limit 1 --speed-time 120 \
          -C - -K "$(current_conf)" -D "$tmpd/headers" -o "$part" -w '%{http_code}' \
          "$url" 2>"$tmpd/curl.err")
        rc=$?
      fi
      if [ "$rc" -ne 0 ]; then
        case $code in
          401)
            if [ "$renewed" = no ] && authenticate "$tmpd/headers"; then
              renewed=yes
              continue
            fi
            complain "sha256:$hex: access denied by $key:" \
              "set SNEAKER_USER and SNEAKER_PASSWORD for private images"
            denied_key=$key
            break
            ;;
          404)
            complain "sha256:$hex: not found at $url"
            break
            ;;
          416)
            rm -f "$part"
            continue
            ;;
          4??)
            complain "sha256:$hex: the registry answered HTTP $code for $url"
            break
            ;;
        esac
        if [ "$rc" -eq 33 ] || [ "$rc" -eq 36 ]; then
          rm -f "$part"
          continue
        fi
        complain "sha256:$hex: curl failed (exit $rc, HTTP $code): $(sed -n 1p "$tmpd/curl.err")"
        continue
      fi
      have=$(size_of "$part")
      if [ "$have" -lt "$size" ]; then
        continue
      fi
      if [ "$have" -gt "$size" ]; then
        complain "sha256:$hex: got $have bytes, expected $size: deleted"
        rm -f "$part"
        break
      fi
    fi
    if digest_ok "$part" "$hex"; then
      mv -f "$part" "$final" || break
      fetched=$((fetched + 1))
      return 0
    fi
    rm -f "$part"
    if [ "$restarted" = no ]; then
      complain "sha256:$hex: content does not match its digest: deleted, fetching it again"
      restarted=yes
      continue
    fi
    complain "sha256:$hex: content does not match its digest: deleted"
    break
  done
  failed=$((failed + 1))
  return 1
}

"""

_FOOTER = r"""
total=$((present + fetched + failed))
if [ "$failed" -ne 0 ]; then
  complain "$failed of $total blobs are missing or damaged; run fetch.sh again"
  exit 1
fi
say "all $total blobs are present and checked ($fetched fetched, $present already there)"
exit 0
"""


def render_fetch_script(items: Sequence[FetchItem], *, version: str) -> str:
    """The text of ``fetch.sh`` for ``items`` (each digest once, grouped by repository)."""
    unique: dict[str, FetchItem] = {}
    for item in items:
        unique.setdefault(item.hex, item)
    order: dict[str, int] = {}
    for item in unique.values():
        order.setdefault(item.key, len(order))
    ordered = sorted(unique.values(), key=lambda i: order[i.key])
    lines = [
        _HEADER.format(version=version, count=len(ordered), size=sum(i.size for i in ordered)),
        _BODY,
    ]
    for item in ordered:
        if not re.fullmatch(r"[a-f0-9]{64}", item.hex) or item.size < 0:
            raise ValueError(f"bad blob for fetch.sh: {item!r}")
        lines.append(
            f"fetch {_quote(item.key)} {_quote(item.url)} {_quote(item.hex)} {item.size}\n"
        )
    lines.append(_FOOTER)
    return "".join(lines)
