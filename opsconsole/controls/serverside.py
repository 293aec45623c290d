"""The shell side of the apply pipeline: one POSIX ``sh`` program run on each server (DESIGN §5).

:mod:`.apply` calls :func:`command` to get the argument vector for one step (``read``, ``body``,
``apply``, ``confirm``, ``rollback``) and sends it over any Transport; the program below is
constant text and every value (paths, tokens, the configured ``nginx_test``/``nginx_reload``
strings) reaches it as a positional argument, never spliced into code.  The new files arrive as
a gzipped tar stream on stdin.

Layout in the control directory, for service ``S`` (the names nginx includes are symlinks):

    S.http.conf -> .S.cur/http.conf        .S.cur  -> .S.g<token>   (the live generation)
    S.server.conf -> .S.cur/server.conf    .S.prev -> .S.g<token>   (the one before)
    S.state.json -> .S.cur/state.json      .S.lock                 (flock, held for the whole step)
    S.maintenance.html -> ...              .S.pending              (an apply is in its risky part)
    S.audit.jsonl (a plain file)           .S.confirm              (a change awaits confirmation)
                                           .S.unposted/r.*         (a timer's revert, not yet
                                                                    announced: ``read`` shows
                                                                    them, ``take`` removes them)
                                           .S.claims/KEY           (``claim``: the first to
                                                                    create KEY announces it)

Swapping the one ``.S.cur`` link with ``mv -T`` switches all four files at once, so a process killed
at any instant leaves them all old or all new.  ``.S.pending`` names the old generation while the
new one is live but not yet tested and reloaded; the next step that takes the lock finds it, goes
back and reloads ("recovered").  A commit-confirmed apply starts a detached ``setsid`` timer that
takes the lock when the window ends and reverts unless ``confirm`` removed ``.S.confirm`` first.

Needs what a stock Linux server has: POSIX ``sh``, util-linux ``flock`` and ``setsid``, GNU
coreutils (``mv -T``, ``date +%s%3N``, fractional ``sleep``, ``sha256sum``), ``tar``, ``gzip``,
``cmp``, and ``pgrep`` (procps) where ``/proc/PID/task/*/children`` is missing.

Exit statuses: 0 done, 73 nothing to roll back, 74 a change awaits confirmation, 75 lock busy,
76 stale state (compare-and-swap failed), 77 ``nginx -t`` failed (reverted), 78 reload not taken
(reverted), 79 control directory problem.  Standard library only.
"""

from __future__ import annotations

BOOT = 'lib=$1; shift; eval "$lib"'

LIB = r"""
set -u
umask 022
mode=$1 dir=$2 svc=$3 server=$4 ticks=$5
shift 5
boot='lib=$1; shift; eval "$lib"'
files="http.conf server.conf state.json maintenance.html"
bv= av= prefix= test_output= reload_error=

say() { printf 'OPSC %s\n' "$*"; }
now_utc() { date -u +%Y-%m-%dT%H:%M:%SZ; }
ms() { date +%s%3N; }
enter() {
  cd -- "$dir" 2>/dev/null || {
    echo "control directory $dir does not exist on $server (run: opsconsole setup $svc)" >&2
    exit 79; }
}
lock() {
  exec 9>>".$svc.lock" || exit 79
  flock -w "$1" 9 || {
    echo "another apply of $svc holds $dir/.$svc.lock on $server (waited $1 s)" >&2; exit 75; }
}
link_to() { ln -sfn -- "$2" "$1.tmp.$$" && mv -fT -- "$1.tmp.$$" "$1"; }
cur_gen() { readlink ".$svc.cur"; }
version_of() {
  v=
  [ ! -f "$1" ] || v=$(sed -n '2{s/^  "version": \([0-9][0-9]*\),$/\1/p;q;}' "$1")
  echo "${v:-0}"
}
state_sha() {
  # An apply sends the SHA-256 and size of its state file beside it (``state.sha``): trusted while
  # the file is not newer and has that size, so a 65 MB state is not hashed at every step.
  [ -s "$svc.state.json" ] || { echo none; return; }
  known=$(cat ".$svc.cur/state.sha" 2>/dev/null) || known=
  if [ -n "$known" ] && [ ! "$svc.state.json" -nt ".$svc.cur/state.sha" ] &&
    [ "${known#* }" = "$(wc -c < "$svc.state.json")" ]; then
    echo "${known%% *}"
  else
    sha256sum < "$svc.state.json" | cut -c1-64
  fi
}
audit() {
  printf '%s, "before_version": %s, "after_version": %s, "result": "%s", "server_time": "%s"}\n' \
    "$prefix" "${bv:-null}" "${av:-null}" "$1" "$(now_utc)" >> "$svc.audit.jsonl"
  chmod 0640 "$svc.audit.jsonl" 2>/dev/null || :
}
sys_prefix() {
  prefix="{\"time\": \"$(now_utc)\", \"operator\": \"$1\", \"service\": \"$svc\""
  prefix="$prefix, \"server\": \"$server\", \"action\": \"$2\", \"diff\": null"
}
children() {
  if [ -r "/proc/$master/task/$master/children" ]; then cat /proc/"$master"/task/*/children
  elif command -v pgrep >/dev/null 2>&1; then pgrep -P "$master"
  else ps -o pid= --ppid "$master"; fi 2>/dev/null | tr '\n' ' '
}
test_nginx() { test_output=$(sh -c "$test_cmd" 2>&1 </dev/null); }
reload_nginx() {
  [ "$master" -gt 0 ] || { reload_error=$(sh -c "$reload_cmd" 2>&1 </dev/null); return; }
  before=" $(children) "
  if ! reload_error=$(sh -c "$reload_cmd" 2>&1 </dev/null); then return 1; fi
  i=0
  while [ "$i" -lt "$ticks" ]; do
    for p in $(children); do
      case "$before" in *" $p "*) ;; *) retire_old; return 0 ;; esac
    done
    kill -0 "$master" 2>/dev/null || { reload_error="the nginx master $master is gone"; return 1; }
    sleep 0.05
    i=$((i + 1))
  done
  reload_error="nginx kept its old configuration: no new worker processes within"
  reload_error="$reload_error $((ticks / 20)) s of '$reload_cmd' (see nginx's error log)"
  return 1
}
cmdline_of() { { tr '\0' ' ' < "/proc/$1/cmdline"; } 2>/dev/null; }
retire_old() {
  # New workers run the new config, but an old worker keeps accepting connections until it has
  # processed the signal; wait (at most 5 s) until every old one is gone or "shutting down".
  j=0
  while [ "$j" -lt 100 ]; do
    busy=
    for p in $before; do
      case "$(cmdline_of "$p")" in *"shutting down"* | "") ;; *) busy=1 ;; esac
    done
    [ -n "$busy" ] || return 0
    sleep 0.05
    j=$((j + 1))
  done
}
gc() {
  rm -f -- ".$svc".*.tmp.* "$svc".*.tmp.* ".$svc.pending.tmp" ".$svc.confirm.tmp"
  keep1=$(cur_gen) keep2=$(readlink ".$svc.prev" 2>/dev/null || :)
  for d in ".$svc.g"*; do
    [ -e "$d" ] || continue
    [ "$d" = "$keep1" ] || [ "$d" = "$keep2" ] || rm -rf -- "$d"
  done
}
mark_pending() {
  printf '%s\n' "$1" > ".$svc.pending.tmp" || exit 79
  mv -f -- ".$svc.pending.tmp" ".$svc.pending" || exit 79
}
ensure_layout() {
  if [ ! -L ".$svc.cur" ]; then
    g=".$svc.g0$1"
    rm -rf -- "$g" && mkdir -m 0755 -- "$g" || exit 79
    for f in $files; do
      if [ -f "$svc.$f" ]; then cp -- "$svc.$f" "$g/$f" || exit 79; fi
    done
    [ -f "$g/http.conf" ] || : > "$g/http.conf"
    [ -f "$g/server.conf" ] || : > "$g/server.conf"
    link_to ".$svc.cur" "$g"
  fi
  for f in $files; do
    [ -L "$svc.$f" ] && continue
    if [ -e "$svc.$f" ] && ! cmp -s -- "$svc.$f" ".$svc.cur/$f"; then
      echo "$dir/$svc.$f on $server was changed by hand; move it aside and retry" >&2; exit 79
    fi
    link_to "$svc.$f" ".$svc.cur/$f"
  done
}
recover() {
  [ -f ".$svc.pending" ] || return 0
  old=$(cat ".$svc.pending")
  bv=$(version_of "$svc.state.json")
  case "$old" in .$svc.g*) [ -d "$old" ] && link_to ".$svc.cur" "$old" ;; esac
  reload_nginx || :
  rm -f -- ".$svc.pending"
  av=$(version_of "$svc.state.json")
  saved=$prefix
  sys_prefix "opsconsole" "recover: an interrupted change was rolled back"
  audit recovered
  prefix=$saved
  say "recovered $old"
}
revert() {
  target=$1 cur=$(cur_gen)
  [ -d "$target" ] || { echo "the previous files of $svc are gone on $server" >&2; return 73; }
  bv=$(version_of "$svc.state.json")
  mark_pending "$cur"
  link_to ".$svc.cur" "$target"
  av=$(version_of "$svc.state.json")
  if ! test_nginx; then
    link_to ".$svc.cur" "$cur"; rm -f -- ".$svc.pending"; av=$bv; audit test-failed
    printf '%s\n' "$test_output" >&2; return 77
  fi
  if ! reload_nginx; then
    link_to ".$svc.cur" "$cur"; reload_nginx || :; rm -f -- ".$svc.pending"; av=$bv
    audit reload-failed
    printf '%s\n' "$reload_error" >&2; return 78
  fi
  # A timer's revert is left for whoever reads the controls next to announce: written before
  # the confirm marker goes, so that no read sees neither.
  [ -z "${announce:-}" ] || unposted
  rm -f -- ".$svc.confirm" ".$svc.prev" ".$svc.pending"
  audit ok
  gc
  say "reverted $bv $av"
}
unposted() {
  mkdir -p -m 0750 -- ".$svc.unposted" || return 0
  n=".$svc.unposted/r.$(ms).$bv.$av"
  printf '%s %s %s %s\n' "$(now_utc)" "$bv" "$av" "$announce" > "$n.tmp" && mv -f -- "$n.tmp" "$n"
}
stop_timer() {
  case "$(cmdline_of "$1")" in
    *opsc-timer*) kill -- "-$1" 2>/dev/null || : ;;
  esac
}

case "$mode" in
read)
  pidfile=$1 inline=$2
  grep -la '^nginx: master process' /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
    p=${f#/proc/}; printf 'OPSC master %s %s\n' "${p%/cmdline}" "$(tr '\0' ' ' < "$f")"
  done
  [ -z "$pidfile" ] || say "pidfile $(cat -- "$pidfile" 2>/dev/null)"
  cd -- "$dir" 2>/dev/null || { say nodir; exit 0; }
  [ ! -f ".$svc.pending" ] || say pending
  [ ! -f ".$svc.confirm" ] || say "confirm $(cat ".$svc.confirm")"
  for f in ".$svc.unposted"/r.*; do
    case "$f" in *.tmp) ;; *) [ ! -f "$f" ] || say "unposted ${f##*/} $(cat -- "$f")" ;; esac
  done
  if [ -f "$svc.state.json" ] && [ "$(wc -c < "$svc.state.json")" -gt "$inline" ]; then
    say "sha $(state_sha)"; say state  # too big to send every time: ``body`` sends it
  else
    say state
    [ ! -f "$svc.state.json" ] || cat -- "$svc.state.json"
  fi
  ;;
body)
  enter
  [ -f "$svc.state.json" ] || { echo "$svc has no state file on $server" >&2; exit 79; }
  gzip -1 -c < "$svc.state.json" || exit 79
  ;;
apply)
  token=$1 expect=$2 master=$3 test_cmd=$4 reload_cmd=$5 confirm=$6
  enter; lock 10; recover; ensure_layout "$token"
  if [ -f ".$svc.confirm" ]; then
    read -r _t _o deadline v _p < ".$svc.confirm"
    until=$(date -u -d "@$deadline" +%H:%M:%SZ)
    echo "state version $v of $svc on $server awaits confirmation (until $until):" \
      "confirm or roll it back first" >&2
    exit 74
  fi
  if [ "$(state_sha)" != "$expect" ]; then
    say stale; sed -n '2,4p' "$svc.state.json"; exit 76
  fi
  new=".$svc.g$token"
  rm -rf -- "$new.tmp" "$new" && mkdir -m 0755 -- "$new.tmp" || exit 79
  # -m: the files get this server's time, so ``state.sha`` (unpacked after ``state.json``) is
  # never older than it, and any later edit of the state file makes it newer.
  if ! tar -xzmf - -C "$new.tmp" --no-same-owner; then
    echo "could not unpack the new files on $server" >&2; rm -rf -- "$new.tmp"; exit 79
  fi
  chmod 0644 "$new.tmp/http.conf" "$new.tmp/server.conf" "$new.tmp/maintenance.html" &&
    chmod 0640 "$new.tmp/state.json" "$new.tmp/state.sha" "$new.tmp/audit.json" &&
    mv -- "$new.tmp" "$new" || exit 79
  prefix=$(cat "$new/audit.json")
  old=$(cur_gen)
  bv=$(version_of "$svc.state.json") av=$(version_of "$new/state.json")
  mark_pending "$old"
  link_to ".$svc.cur" "$new"
  t0=$(ms)
  if ! test_nginx; then
    link_to ".$svc.cur" "$old"; rm -f -- ".$svc.pending"
    av=$bv; audit test-failed; rm -rf -- "$new"
    printf '%s\n' "$test_output" >&2; exit 77
  fi
  t1=$(ms)
  if ! reload_nginx; then
    link_to ".$svc.cur" "$old"; reload_nginx || :
    rm -f -- ".$svc.pending"; av=$bv; audit reload-failed; rm -rf -- "$new"
    printf '%s\n' "$reload_error" >&2; exit 78
  fi
  t2=$(ms)
  link_to ".$svc.prev" "$old"
  if [ "$confirm" -gt 0 ]; then
    deadline=$(( $(date +%s) + confirm ))
    setsid sh -c "$boot" opsc-timer "$lib" timer "$dir" "$svc" "$server" "$ticks" \
      "$token" "$confirm" "$master" "$test_cmd" "$reload_cmd" </dev/null >/dev/null 2>&1 9>&- &
    printf '%s %s %s %s %s\n' "$token" "$old" "$deadline" "$av" "$!" > ".$svc.confirm.tmp" &&
      mv -f -- ".$svc.confirm.tmp" ".$svc.confirm" || exit 79
    say "confirm-by $deadline"
  fi
  rm -f -- ".$svc.pending"
  audit ok
  gc
  say "ok test_ms=$((t1 - t0)) reload_ms=$((t2 - t1))"
  ;;
timer)
  token=$1 wait=$2 master=$3 test_cmd=$4 reload_cmd=$5
  sleep "$wait"
  enter; lock 120
  [ -f ".$svc.confirm" ] || exit 0
  read -r t old _d _v _p < ".$svc.confirm" || exit 0
  [ "$t" = "$token" ] || exit 0
  sys_prefix "opsconsole-timer" "rollback: not confirmed within ${wait}s"
  announce="$(tr '\n' ' ' < "$svc.state.json" 2>/dev/null || :)"
  announce=${announce:-"{}"}
  revert "$old" || exit $?
  ;;
take)
  enter
  for f in "$@"; do
    case "$f" in r.[0-9]*) ;; *) echo "bad unposted name" >&2; exit 79 ;; esac
    case "$f" in *[!0-9r.]*) echo "bad unposted name" >&2; exit 79 ;; esac
    rm -f -- ".$svc.unposted/$f"
  done
  ;;
claim)
  key=$1
  case "$key" in "" | *[!0-9a-f]*) echo "bad claim key" >&2; exit 79 ;; esac
  enter
  mkdir -p -m 0750 -- ".$svc.claims" || exit 79
  find ".$svc.claims" -mindepth 1 -maxdepth 1 -mtime +1 -exec rm -rf -- {} + 2>/dev/null || :
  if mkdir -- ".$svc.claims/$key" 2>/dev/null; then say claimed; else say taken; fi
  ;;
recover)
  master=$1 test_cmd=$2 reload_cmd=$3
  enter; lock 10; recover
  ;;
confirm|rollback)
  master=$1 test_cmd=$2 reload_cmd=$3
  prefix=$(cat)
  enter; lock 10; recover
  if [ -f ".$svc.confirm" ]; then
    read -r _t old _d v pid < ".$svc.confirm"
    stop_timer "$pid"
    if [ "$mode" = confirm ]; then
      rm -f -- ".$svc.confirm"; bv=$v av=$v; audit ok; say "confirmed $v"; exit 0
    fi
    revert "$old"; exit $?
  fi
  if [ "$mode" = confirm ]; then say nothing; exit 0; fi
  prev=$(readlink ".$svc.prev" 2>/dev/null) || {
    echo "nothing to roll back for $svc on $server" >&2; exit 73; }
  revert "$prev"
  ;;
*)
  echo "unknown mode $mode" >&2; exit 79 ;;
esac
"""


RELOAD_WAIT = 15.0
"""Seconds a reload may take before the program declares that nginx kept its old configuration."""


def command(
    mode: str,
    control_dir: str,
    service: str,
    server: str,
    *args: str,
    reload_wait: float | None = None,
) -> list[str]:
    """The argument vector running ``mode`` of the program (prefix ``sudo -n`` where configured)."""
    ticks = str(max(1, round((RELOAD_WAIT if reload_wait is None else reload_wait) / 0.05)))
    return ["sh", "-c", BOOT, "opsc", LIB, mode, control_dir, service, server, ticks, *args]
