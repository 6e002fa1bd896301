# shellcheck shell=bash
# Helpers for scripts/cluster: logging, waiting, and finding/stopping processes
# through /proc. Sourced, not executed. Requires bash and Linux /proc.

# ---------------------------------------------------------------- logging ---

log()  { printf 'cluster: %s\n' "$*" >&2; }
warn() { printf 'cluster: warning: %s\n' "$*" >&2; }
die()  { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- waiting ---

# wait_until SECONDS CMD [ARGS...]
# Runs CMD every 0.2 s until it succeeds (returns 0) or SECONDS have passed
# (returns 1). CMD's output is not suppressed; redirect inside CMD if needed.
wait_until() {
    local timeout=$1; shift
    local deadline=$(( $(date +%s%N) + timeout * 1000000000 ))
    while true; do
        if "$@"; then return 0; fi
        if (( $(date +%s%N) >= deadline )); then return 1; fi
        sleep 0.2
    done
}

# ---------------------------------------------------------------- processes ---

# read_pid FILE: prints the pid stored in FILE if it is a plain number.
read_pid() {
    local pid=""
    if [[ -r $1 ]]; then read -r pid 2>/dev/null < "$1" || true; fi
    [[ $pid =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
    return 0
}

# pid_alive PID: true if PID exists and is not a zombie (a zombie has already
# exited; it only waits for its parent to reap it).
pid_alive() {
    local stat
    [[ -n ${1-} ]] || return 1
    read -r stat 2>/dev/null < "/proc/$1/stat" || return 1
    # Field 3 is the state; the command field (2) is in parentheses and may
    # contain spaces, so cut after the last ')'.
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# proc_cmdline PID: the command line with NULs turned into spaces.
proc_cmdline() {
    tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null || true
}

# proc_has_env PID NAME=VALUE: true if the process was started with exactly that
# environment entry. /proc/PID/environ is the environment at exec time; it is
# readable by root for every process.
proc_has_env() {
    grep -qzxF -- "$2" "/proc/$1/environ" 2>/dev/null
}

# pids_with_env NAME=VALUE [NAME=VALUE...]: all live processes (except this
# shell) whose start environment contains every given entry.
pids_with_env() {
    local -a files
    local entry f pid
    # One grep over every /proc/*/environ for the first entry, then check the
    # few candidates for the remaining entries.
    mapfile -t files < <(grep -lzxF -- "$1" /proc/[0-9]*/environ 2>/dev/null || true)
    shift
    for f in "${files[@]}"; do
        pid=${f#/proc/}; pid=${pid%/environ}
        [[ $pid == "$$" || $pid == "${BASHPID:-$$}" ]] && continue
        for entry in "$@"; do
            proc_has_env "$pid" "$entry" || continue 2
        done
        pid_alive "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

# descendants PID...: all live descendants (children, grandchildren, ...) of
# the given pids, found through the parent pid in /proc/*/stat.
descendants() {
    local -A children_of=()
    local dir pid stat ppid
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        read -r stat 2>/dev/null < "$dir/stat" || continue
        stat=${stat##*) }           # "S PPID ..."
        ppid=${stat#* }; ppid=${ppid%% *}
        children_of[$ppid]+=" $pid"
    done
    local -a queue=("$@")
    local -A seen=()
    local p c
    while (( ${#queue[@]} )); do
        p=${queue[0]}; queue=("${queue[@]:1}")
        for c in ${children_of[$p]-}; do
            if [[ -z ${seen[$c]-} ]]; then seen[$c]=1; queue+=("$c"); fi
        done
    done
    for c in "${!seen[@]}"; do pid_alive "$c" && printf '%s\n' "$c"; done
    return 0
}

# any_alive PID...: true if at least one pid is alive.
any_alive() {
    local p
    for p in "$@"; do pid_alive "$p" && return 0; done
    return 1
}

# none_alive PID...: true if every pid is gone (or a zombie).
none_alive() { ! any_alive "$@"; }

# none_exist PID...: true if no pid is in /proc any more, not even as a zombie.
none_exist() {
    local p
    for p in "$@"; do [[ -e /proc/$p ]] && return 1; done
    return 0
}

# wait_reaped PID...: a dead daemon stays a zombie until its parent reaps it.
# Daemons are children of PID 1, which normally reaps at once, but a minimal
# init (as in some containers and VMs) may take a second or two. Wait a little
# so that `pgrep` right after `down` shows nothing; no error if it takes longer.
wait_reaped() {
    wait_until 5 none_exist "$@" || true
}

# stop_pids SECONDS PID...: SIGTERM, wait up to SECONDS, then SIGKILL whatever
# is left and wait (bounded) for it to disappear.
stop_pids() {
    local timeout=$1; shift
    (( $# )) || return 0
    kill -TERM "$@" 2>/dev/null || true
    if ! wait_until "$timeout" none_alive "$@"; then
        warn "still running after ${timeout}s, sending SIGKILL to: $*"
        kill -KILL "$@" 2>/dev/null || true
        wait_until 5 none_alive "$@" || warn "could not kill: $*"
    fi
}

# kill_tree_now PID...: SIGKILL the given processes and all their descendants
# without giving them a chance to react (a "node crash"). The processes are
# stopped first so that none can fork a new child between listing and killing.
kill_tree_now() {
    (( $# )) || return 0
    local -a all
    kill -STOP "$@" 2>/dev/null || true
    mapfile -t all < <(printf '%s\n' "$@"; descendants "$@")
    kill -STOP "${all[@]}" 2>/dev/null || true
    # Some may have forked between the two listings: list again.
    mapfile -t all < <(printf '%s\n' "${all[@]}"; descendants "${all[@]}")
    kill -KILL "${all[@]}" 2>/dev/null || true
    wait_until 5 none_alive "${all[@]}" || warn "could not kill: ${all[*]}"
}

# port_in_use PORT: true if something listens on TCP PORT.
port_in_use() {
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}
