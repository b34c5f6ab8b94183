# shellcheck shell=bash
# Shared by build.sh, deploy.sh and undeploy.sh: settings checks, messages and the runner
# that turns every docker/kubectl call into a printed line when DRY_RUN=true.

# Planned commands go to the script's own stdout (fd 3), even from inside $(...).
exec 3>&1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
readonly ROOT
readonly IMAGE_NAME=edge-metrics-server

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

info() {
    printf '==> %s\n' "$*" >&2
}

warn() {
    printf 'warning: %s\n' "$*" >&2
}

# Prints the comment block at the top of the calling script (its usage) without the '#'.
usage() {
    sed -n '2,/^$/{/^#/!q;s/^# \{0,1\}//;p;}' "$0"
}

# bool NAME DEFAULT: the variable NAME, which must be true or false (DEFAULT when unset).
bool() {
    local value="${!1:-$2}"
    case "$value" in
        true | false) printf '%s' "$value" ;;
        *) die "$1 must be true or false, not '$value'" ;;
    esac
}

# The version in pyproject.toml: the default image tag.
project_version() {
    sed -n 's/^version = "\([^"]*\)"$/\1/p' "$ROOT/pyproject.toml" | head -n 1
}

# A version is used as the image tag and as the app.kubernetes.io/version label value.
check_version() {
    [[ $1 =~ ^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$ ]] ||
        die "VERSION '$1' must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit"
}

check_registry() {
    [[ -z $1 || ($1 =~ ^[a-z0-9]([a-z0-9._:/-]*[a-z0-9])?$ && $1 != *//*) ]] ||
        die "REGISTRY '$1' must look like registry.example.com:5000/team (lower case, no scheme)"
}

check_namespace() {
    [[ ${#1} -le 63 && $1 =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] ||
        die "NAMESPACE '$1' is not a valid namespace name (lower-case RFC 1123 label)"
}

# image VERSION REGISTRY: the image reference [$REGISTRY/]edge-metrics-server:$VERSION.
image_ref() {
    printf '%s%s:%s' "${2:+$2/}" "$IMAGE_NAME" "$1"
}

# Quotes each argument for a POSIX shell, only where needed, so printed commands paste back.
quote() {
    local arg out=()
    for arg in "$@"; do
        if [[ $arg =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+=("$arg")
        else
            out+=("'${arg//\'/\'\\\'\'}'")
        fi
    done
    printf '%s' "${out[*]}"
}

is_dry_run() {
    [[ $DRY_RUN == true ]]
}

# run CMD...: runs CMD, or with DRY_RUN=true prints it on stdout instead.
run() {
    if is_dry_run; then
        printf '%s\n' "$(quote "$@")" >&3
    else
        printf '+ %s\n' "$(quote "$@")" >&2
        "$@"
    fi
}

# run_unless CHECK... -- ACTION...: ACTION only when CHECK fails (CHECK's output is hidden).
run_unless() {
    run_checked fails "$@"
}

# run_if CHECK... -- ACTION...: ACTION only when CHECK succeeds (CHECK's output is hidden).
run_if() {
    run_checked succeeds "$@"
}

# run_checked succeeds|fails CHECK... -- ACTION...: the two above; a dry run prints the
# pair as one shell line (`CHECK && ACTION`, `CHECK || ACTION`).
run_checked() {
    local when=$1 check=() operator='&&' outcome=succeeds
    shift
    [[ $when == fails ]] && operator='||'
    while [[ $1 != -- ]]; do
        check+=("$1")
        shift
    done
    shift
    if is_dry_run; then
        printf '%s >/dev/null 2>&1 %s %s\n' "$(quote "${check[@]}")" "$operator" "$(quote "$@")" >&3
        return
    fi
    "${check[@]}" >/dev/null 2>&1 || outcome=fails
    if [[ $outcome == "$when" ]]; then
        run "$@"
    fi
}

# query CMD...: CMD's output for the script to read; with DRY_RUN=true, printed and empty.
query() {
    if is_dry_run; then
        printf '%s\n' "$(quote "$@")" >&3
    else
        "$@" 2>/dev/null || true
    fi
}

# need TOOL: fail early, with a hint, when a command the script runs is missing.
need() {
    is_dry_run || command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed or not on PATH"
}

# parse_args MAX_ARGS "$@": every script answers --help (its own `usage`), refuses other
# options and takes at most MAX_ARGS positional arguments.
parse_args() {
    local max=$1
    shift
    case "${1:-}" in
        -h | --help)
            usage
            exit 0
            ;;
        -*) die "unknown option '$1' (see --help)" ;;
    esac
    [[ $# -le $max ]] || die "too many arguments (see --help)"
}
