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

Several blobs download at once: ``SNEAKER_FETCH_JOBS`` (default
:data:`DEFAULT_JOBS`, at most :data:`MAX_JOBS`; 1 is one after another)
background jobs each read the whole list and take every blob no other job has
taken yet (``mkdir`` of a marker is atomic, and needs no tool beyond those
above), so a large layer holds up one job only. Each job keeps its files (curl's
headers and errors, tokens) apart; what they share is the markers of taken
blobs and of repositories that refused access, so that a refusal is reported
once. Messages are whole lines written by one ``printf`` each. A job runs curl in
the background and waits for it; on Ctrl-C (which background jobs of a script
ignore) the main script sends each job a TERM, the job kills its curl, and
the script exits once all are gone, leaving the ``.part`` files to resume.

Tokens and passwords go to curl in config files (``-K``), never on a command
line where ``ps`` would show them. Those files, and all the other temporary
state (markers, curl's headers, token answers), live in a private directory
outside the plan directory (``$TMPDIR/sneaker-fetch.PID.N``, mode 0700, the
secret files 0600), made with ``mkdir`` (atomic, and it never follows a
planted link) and removed by a trap on every exit a shell can trap (the end,
an error, Ctrl-C, TERM, HUP): the plan directory, which crosses the air gap,
never holds a credential. A run killed by SIGKILL leaves its directory; the
next run removes the ones whose process is gone, and so the ``.fetch-tmp.PID``
directories older scripts made in the plan directory.
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


#: blobs fetched at once when SNEAKER_FETCH_JOBS is not set
DEFAULT_JOBS = 4
#: the largest SNEAKER_FETCH_JOBS the script accepts
MAX_JOBS = 64

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
# CURL_CA_BUNDLE as usual. Credentials and tokens are kept in a private
# directory in $TMPDIR (default /tmp), never in DIR, and removed on exit.
#
# Several blobs download at once: SNEAKER_FETCH_JOBS=N fetches up to N at a time
# (1 to {max_jobs}, default {default_jobs}); SNEAKER_FETCH_JOBS=1 fetches one after another.
# Ctrl-C stops every download; run the script again to resume them.
"""

# the functions (the main script is _MAIN)
_BODY = r"""
set -u

case $0 in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
target=${1:-$here}
store=$target/blobs/sha256

jobs=${SNEAKER_FETCH_JOBS:-__DEFAULT_JOBS__}
case $jobs in
  [1-9] | [1-9][0-9]) ;;
  *) jobs=0 ;;
esac
if [ "$jobs" -lt 1 ] || [ "$jobs" -gt __MAX_JOBS__ ]; then
  echo "fetch.sh: SNEAKER_FETCH_JOBS must be a whole number from 1 to __MAX_JOBS__," \
    "not '${SNEAKER_FETCH_JOBS:-}'" >&2
  exit 2
fi

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

www_auth='^[Ww][Ww][Ww]-[Aa][Uu][Tt][Hh][Ee][Nn][Tt][Ii][Cc][Aa][Tt][Ee]:[[:space:]]*'
present=0
fetched=0
auth_key=
auth_conf=
probed_key=
stopping=no
cpid=
pids=
why=

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

# leave the job now, stopping its curl
quit() {
  if [ -n "$cpid" ]; then
    kill "$cpid" 2>/dev/null
    wait "$cpid" 2>/dev/null
  fi
  exit 143
}

# curl ARGS... (which write the HTTP status with -w): runs curl in the background
# and waits for it, so that a TERM stops it at once; sets $code, returns curl's status
run_curl() {
  [ "$stopping" = no ] || quit
  curl "$@" >"$wd/code" 2>"$wd/curl.err" &
  cpid=$!
  [ "$stopping" = no ] || quit
  wait "$cpid"
  crc=$?
  [ "$stopping" = no ] || quit
  cpid=
  code=
  read -r code <"$wd/code" || :
  return "$crc"
}

# the value of parameter $1 (a case-insensitive sed pattern) of the challenge in $challenge
challenge_param() {
  printf '%s\n' "$challenge" |
    sed 's/,[[:space:]]*\([A-Za-z][A-Za-z0-9_-]*=\)/\
\1/g' |
    sed -n "s/^[[:space:]]*$1=\"\\{0,1\\}\\([^\"]*\\)\"\\{0,1\\}[[:space:]]*\$/\\1/p" |
    sed -n 1p
}

# get credentials for $key after a 401 whose headers are in $1; 0 when there is
# something to try, else 1 with the reason (if any) in $why
authenticate() {
  why=
  challenge=$(tr -d '\r' <"$1" |
    sed -n "s/${www_auth}[Bb][Ee][Aa][Rr][Ee][Rr][[:space:]][[:space:]]*//p" |
    sed -n 1p)
  if [ -z "$challenge" ]; then
    if ! has_basic "$1"; then
      why="$key: the registry answered 401 without a Bearer or Basic challenge"
      return 1
    fi
    if [ -z "${SNEAKER_USER:-}" ]; then
      why="$key: the registry asks for a user name and password:"
      why="$why set SNEAKER_USER and SNEAKER_PASSWORD"
      return 1
    fi
    if [ "$auth_key" = "$key" ] && [ "$auth_conf" = "$wd/auth.conf" ]; then
      return 1 # these credentials were refused already
    fi
    user_line >"$wd/auth.conf"
    auth_conf=$wd/auth.conf
    auth_key=$key
    return 0
  fi
  realm=$(challenge_param '[Rr][Ee][Aa][Ll][Mm]')
  service=$(challenge_param '[Ss][Ee][Rr][Vv][Ii][Cc][Ee]')
  scope=$(challenge_param '[Ss][Cc][Oo][Pp][Ee]')
  [ -n "$scope" ] || scope="repository:${key#*/}:pull"
  if [ -z "$realm" ]; then
    why="$key: the registry's challenge names no realm"
    return 1
  fi
  : >"$wd/token.conf"
  [ -z "${SNEAKER_USER:-}" ] || user_line >"$wd/token.conf"
  if [ -n "$service" ]; then
    set -- --data-urlencode "service=$service"
  else
    set --
  fi
  run_curl -gsL --retry 3 --connect-timeout 30 -K "$wd/token.conf" -G "$@" \
    --data-urlencode "scope=$scope" -o "$wd/token.json" -w '%{http_code}\n' "$realm"
  trc=$?
  if [ "$trc" -ne 0 ]; then
    why="$key: cannot reach the token service at $realm (curl exit $trc):"
    why="$why $(sed -n 1p "$wd/curl.err")"
    return 1
  fi
  if [ "$code" != 200 ]; then
    if [ -n "${SNEAKER_USER:-}" ]; then
      why="it refused the credentials in SNEAKER_USER and SNEAKER_PASSWORD"
    else
      why="set SNEAKER_USER and SNEAKER_PASSWORD for private images"
    fi
    why="$key: the token service at $realm answered HTTP $code: $why"
    return 1
  fi
  body=$(tr -d '\r\n' <"$wd/token.json")
  token=$(printf '%s\n' "$body" |
    sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  if [ -z "$token" ]; then
    token=$(printf '%s\n' "$body" |
      sed -n 's/.*"access_token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  fi
  if [ -z "$token" ]; then
    why="$key: the token service at $realm answered without a token"
    return 1
  fi
  printf 'header = "Authorization: Bearer %s"\n' "$(conf_escape "$token")" >"$wd/auth.conf"
  auth_conf=$wd/auth.conf
  auth_key=$key
  return 0
}

has_basic() {
  basic=$(tr -d '\r' <"$1" |
    sed -n "s/${www_auth}[Bb][Aa][Ss][Ii][Cc]\\([[:space:]].*\\)\\{0,1\\}\$/basic/p" |
    sed -n 1p)
  [ -n "$basic" ]
}

# $key refuses access: the first job to find out says why (and MESSAGE...), the others keep quiet
deny() {
  mkdir "$tmpd/denied.$keyno" 2>/dev/null || return 0
  [ -z "$why" ] || complain "$why"
  [ "$#" -eq 0 ] || complain "$@"
}

# ask once per repository, before downloading, whether the registry wants a token
probe() {
  [ "$probed_key" = "$key" ] && return 0
  probed_key=$key
  [ "$auth_key" = "$key" ] && return 0
  why=
  run_curl -gsI --retry 3 --connect-timeout 30 -K "$tmpd/none.conf" -D "$wd/headers" \
    -o /dev/null -w '%{http_code}\n' "$url"
  if [ "$code" = 401 ]; then
    authenticate "$wd/headers" || return 1
  fi
  return 0
}

# fetch_blob KEY URL HEX SIZE: 0 when the blob is in place and checked
fetch_blob() {
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
  [ -d "$tmpd/denied.$keyno" ] && return 1
  probe || {
    deny
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
        conf=$tmpd/none.conf
        [ "$auth_key" != "$key" ] || conf=$auth_conf
        run_curl -gsSfL --retry 3 --connect-timeout 30 --speed-limit 1 --speed-time 120 \
          -C - -K "$conf" -D "$wd/headers" -o "$part" -w '%{http_code}\n' "$url"
        rc=$?
      fi
      if [ "$rc" -ne 0 ]; then
        case $code in
          401)
            why=
            if [ "$renewed" = no ] && authenticate "$wd/headers"; then
              renewed=yes
              continue
            fi
            deny "sha256:$hex: access denied by $key:" \
              "set SNEAKER_USER and SNEAKER_PASSWORD for private images"
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
        complain "sha256:$hex: curl failed (exit $rc, HTTP $code): $(sed -n 1p "$wd/curl.err")"
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
  return 1
}

# Parallel downloads: each job is a background copy of this shell that reads the
# whole list below (blobs) and takes every blob no other job has taken yet (the
# mkdir of a marker is atomic). A job runs curl in the background and waits for
# it, so that the TERM the main script sends on Ctrl-C stops curl at once.

# fetch KEY URL HEX SIZE: the next blob of the list, unless another job took it
fetch() {
  [ "$stopping" = no ] || quit
  item=$((item + 1))
  if [ "$1" != "$last_key" ]; then
    keyno=$((keyno + 1))
    last_key=$1
  fi
  [ -d "$tmpd/taken.$item" ] && return 0
  if ! mkdir "$tmpd/taken.$item" 2>/dev/null; then
    [ -d "$tmpd/taken.$item" ] || complain "sha256:$3: cannot write in $tmpd"
    return 0
  fi
  fetch_blob "$@" || :
}

# download job N: fetches what it can take from the list, then writes its counts
job() {
  trap - EXIT
  trap '' INT
  trap 'stopping=yes; [ -z "$cpid" ] || kill "$cpid" 2>/dev/null' TERM
  wd=$tmpd/job$1
  item=0
  keyno=0
  last_key=
  mkdir "$wd" || exit 2
  # the files that hold credentials and tokens: made 0600 before anything goes in
  (umask 077 && : >"$wd/auth.conf" && : >"$wd/token.conf" && : >"$wd/token.json") || exit 2
  blobs
  printf '%s %s\n' "$present" "$fetched" >"$wd/counts"
  exit 0
}

# Ctrl-C and friends: background jobs of a script ignore SIGINT, so stop them here
# shellcheck disable=SC2317 # called by the traps of the main script
stop() {
  trap '' INT TERM HUP
  for pid in $pids; do
    kill "$pid" 2>/dev/null
  done
  wait
  complain "interrupted: run fetch.sh again to resume"
  exit "$1"
}

# is process $1 gone? (never for what is not a number)
gone() {
  case $1 in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ -d "/proc/$1" ] && return 1
  kill -0 "$1" 2>/dev/null && return 1
  return 0
}

# the temporary directories of runs killed by SIGKILL (no trap runs then): this script's,
# in $tmp_root, and the .fetch-tmp.PID that older scripts made in the plan directory
remove_stale() {
  for old in "$tmp_root"/sneaker-fetch.*.* "$target"/.fetch-tmp.*; do
    [ -d "$old" ] || continue
    owner=${old##*/}
    owner=${owner#sneaker-fetch.}
    owner=${owner#.fetch-tmp.}
    owner=${owner%%.*}
    if gone "$owner"; then
      rm -rf "$old" 2>/dev/null
    fi
  done
}

# a new private directory (mode 0700) for this run, outside the plan directory
private_dir() {
  n=0
  while [ "$n" -lt 100 ]; do
    dir=$tmp_root/sneaker-fetch.$$.$n
    if (umask 077 && mkdir "$dir") 2>/dev/null; then
      printf '%s\n' "$dir"
      return 0
    fi
    n=$((n + 1))
  done
  complain "cannot make a private directory in $tmp_root: set TMPDIR to a writable one"
  return 1
}

"""

# The main script: start the jobs, wait for them, add up.
_MAIN = r"""
mkdir -p "$store" || exit 2
tmp_root=${TMPDIR:-/tmp}
tmp_root=${tmp_root%/}
tmpd=
trap '[ -z "$tmpd" ] || rm -rf "$tmpd"' EXIT
trap 'stop 130' INT
trap 'stop 143' TERM
trap 'stop 129' HUP
remove_stale
tmpd=$(private_dir) || exit 2
: >"$tmpd/none.conf"

[ "$jobs" -le "$total" ] || jobs=$total
n=0
while [ "$n" -lt "$jobs" ]; do
  n=$((n + 1))
  job "$n" &
  pids="$pids $!"
done
for pid in $pids; do
  wait "$pid"
done

n=0
while [ "$n" -lt "$jobs" ]; do
  n=$((n + 1))
  if [ -f "$tmpd/job$n/counts" ] && read -r job_present job_fetched <"$tmpd/job$n/counts"; then
    present=$((present + job_present))
    fetched=$((fetched + job_fetched))
  else
    complain "download job $n stopped before it finished"
  fi
done
failed=$((total - present - fetched))
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
    header = _HEADER.format(
        version=version,
        count=len(ordered),
        size=sum(i.size for i in ordered),
        default_jobs=DEFAULT_JOBS,
        max_jobs=MAX_JOBS,
    )
    body = _BODY.replace("__DEFAULT_JOBS__", str(DEFAULT_JOBS)).replace(
        "__MAX_JOBS__", str(MAX_JOBS)
    )
    lines = [
        header,
        body,
        "# the blobs, grouped by repository: fetch KEY URL HEX SIZE\n",
        "blobs() {\n",
    ]
    for item in ordered:
        if not re.fullmatch(r"[a-f0-9]{64}", item.hex) or item.size < 0:
            raise ValueError(f"bad blob for fetch.sh: {item!r}")
        lines.append(
            f"fetch {_quote(item.key)} {_quote(item.url)} {_quote(item.hex)} {item.size}\n"
        )
    lines += [":\n}\n", f"\ntotal={len(ordered)}\n", _MAIN]
    return "".join(lines)
