# lib.sh — shared by up, down, status and the chaos tests' helpers (sourced).
# dsc_init RELEASE sets: RELEASE, PROJECT (compose project), NET (subnet's
# first three octets), STATE (host directory), and exports what compose.yml reads.
DSC_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

dsc_die() { echo "docker-slurm-cluster: $*" >&2; exit 1; }

dsc_init() {
  RELEASE=${1:-}
  [[ -n $RELEASE ]] || dsc_die "which release? one of: $(awk '!/^#/ && NF { printf "%s ", $1 }' "$DSC_HERE/releases")"
  awk -v r="$RELEASE" '$1 == r { f = 1 } END { exit !f }' "$DSC_HERE/releases" ||
    dsc_die "no release $RELEASE in $DSC_HERE/releases"
  # 22.05 -> vigil-dsc-2205 on 172.31.22.0/24: one subnet per release, so
  # clusters of several releases can run side by side.
  PROJECT=vigil-dsc-${RELEASE//./}
  NET=172.31.${RELEASE%%.*}
  STATE=${VIGIL_DSC_STATE:-/tmp/vigil-dsc}/$RELEASE
  export RELEASE NET STATE
}

dsc_compose() { docker-compose --ansi never -p "$PROJECT" -f "$DSC_HERE/compose.yml" "$@"; }

# Health of one service's container: healthy, unhealthy, starting, or none.
dsc_health() {
  local id
  id=$(dsc_compose ps -q "$1" 2>/dev/null)
  [[ -n $id ]] || { echo none; return; }
  docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo none
}

dsc_exec() { local svc=$1; shift; docker exec "$(dsc_compose ps -q "$svc")" "$@"; }
