#!/usr/bin/env bash
# Install (or remove) edgeface as a systemd service from the checkout this script lives in.
#
#   sudo deploy/install.sh                      install or upgrade, build models, enable unit
#   sudo deploy/install.sh --skip-models        keep/skip /var/lib/edgeface/models
#   sudo deploy/install.sh --models-bundle models.tar   install models exported on a build host
#                                                (`edgeface models export`): no TensorFlow here
#   sudo deploy/install.sh --uninstall          remove unit, venv and user; keep config + state
#   sudo deploy/install.sh --uninstall --purge  ... and /etc/edgeface, /var/lib/edgeface too
#
# Layout (paths are relative to --root, "/" by default):
#   /opt/edgeface/venv            the device venv: edgeface + runtime deps, never TensorFlow
#   /etc/edgeface/edgeface.yaml   config, root:edgeface 0640; copied once, never overwritten
#   /var/lib/edgeface             state (outbox, embedding cache), edgeface 0700
#   /var/lib/edgeface/models      built TFLite models ($EDGEFACE_MODEL_CACHE in the unit)
#   /var/lib/edgeface/gallery     GALLERY/<person>/<photo>.jpg; the daemon only reads it.
#                                 It sits in the state dir (not /etc) because it is data that
#                                 changes at run time, is watched live, and can be large.
#                                 Add photos as root: files must be readable by edgeface.
#   /etc/systemd/system/edgeface.service
#
# --root DIR installs into DIR as if it were "/" (user via useradd --prefix, unit enabled with
# systemctl --root). It is meant for tests and staging: the venv's scripts point into DIR.
# Idempotent: running it again upgrades the package and leaves config and state alone.
set -euo pipefail

PROG=${0##*/}
CHECKOUT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=""
PREFIX=/opt/edgeface
PYTHON=python3
EXTRAS=""
SKIP_MODELS=0
MODELS_BUNDLE=""
MODELS_SHA256=""
VENV_OPTS=()
USE_SYSTEMCTL=1
UNINSTALL=0
PURGE=0
PIP_OPTS=()

SERVICE_USER=edgeface
ETC_DIR=/etc/edgeface
STATE_DIR=/var/lib/edgeface
UNIT_DIR=/etc/systemd/system
UNIT=edgeface.service

usage() {
    cat <<EOF
usage: $PROG [options]
  --root DIR           install into DIR instead of / (DESTDIR-style; for tests and staging)
  --prefix DIR         where the venv goes (default /opt/edgeface; venv at DIR/venv)
  --python PY          interpreter for the venv (default python3, must be >= 3.11)
  --extras LIST        package extras for the device venv, e.g. systemd or tflite-runtime
  --pip-option OPT     pass OPT to pip install (repeatable), e.g. --pip-option=--no-deps
  --skip-models        do not build models into $STATE_DIR/models
  --models-bundle TAR  import models from TAR (`edgeface models export` on a build host) into
                       $STATE_DIR/models with the device venv, instead of building them here
  --models-sha256 HEX  with --models-bundle: refuse a bundle whose sha256 is not HEX
  --system-site-packages  the device venv sees the OS's Python packages (python3-picamera2
                       for a Raspberry Pi camera module comes from apt)
  --no-systemctl       do not call systemctl (no enable, reload or restart)
  --uninstall          remove the unit, the venv and the user; keep config and state
  --purge              with --uninstall: also delete $ETC_DIR and $STATE_DIR
  -h, --help           this text
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}
say() { echo "$PROG: $*"; }

while (($#)); do
    case $1 in
    --root) ROOT=${2:?--root needs a directory}; shift ;;
    --root=*) ROOT=${1#*=} ;;
    --prefix) PREFIX=${2:?--prefix needs a directory}; shift ;;
    --prefix=*) PREFIX=${1#*=} ;;
    --python) PYTHON=${2:?--python needs an interpreter}; shift ;;
    --python=*) PYTHON=${1#*=} ;;
    --extras) EXTRAS=${2?--extras needs a list}; shift ;;
    --extras=*) EXTRAS=${1#*=} ;;
    --pip-option) PIP_OPTS+=("${2:?--pip-option needs a value}"); shift ;;
    --pip-option=*) PIP_OPTS+=("${1#*=}") ;;
    --skip-models) SKIP_MODELS=1 ;;
    --models-bundle) MODELS_BUNDLE=${2:?--models-bundle needs a file}; shift ;;
    --models-bundle=*) MODELS_BUNDLE=${1#*=} ;;
    --models-sha256) MODELS_SHA256=${2:?--models-sha256 needs a digest}; shift ;;
    --models-sha256=*) MODELS_SHA256=${1#*=} ;;
    --system-site-packages) VENV_OPTS+=(--system-site-packages) ;;
    --no-systemctl) USE_SYSTEMCTL=0 ;;
    --uninstall) UNINSTALL=1 ;;
    --purge) PURGE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

((EUID == 0)) || die "must run as root (it creates a system user and chowns files)"
((PURGE == 0 || UNINSTALL == 1)) || die "--purge only makes sense with --uninstall"
if [[ -n $MODELS_BUNDLE ]]; then
    [[ -f $MODELS_BUNDLE ]] || die "--models-bundle $MODELS_BUNDLE: no such file"
    MODELS_BUNDLE=$(cd "$(dirname "$MODELS_BUNDLE")" && pwd)/$(basename "$MODELS_BUNDLE")
fi
if [[ -n $MODELS_SHA256 ]]; then
    # Before anything is created: a wrong bundle must leave no user, venv, config or state.
    [[ -n $MODELS_BUNDLE ]] || die "--models-sha256 needs --models-bundle"
    [[ $MODELS_SHA256 =~ ^[0-9a-fA-F]{64}$ ]] ||
        die "--models-sha256 $MODELS_SHA256: expected 64 hexadecimal digits"
    actual=$(sha256sum "$MODELS_BUNDLE") || die "--models-bundle $MODELS_BUNDLE: cannot be read"
    actual=${actual%% *}
    [[ $actual == "${MODELS_SHA256,,}" ]] ||
        die "--models-bundle $MODELS_BUNDLE: sha256 is $actual, not the expected ${MODELS_SHA256,,}; nothing installed"
fi
[[ $PREFIX == /* ]] || die "--prefix must be an absolute path, got $PREFIX"
if [[ -n $ROOT ]]; then
    [[ -d $ROOT ]] || die "--root $ROOT: not a directory"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || ROOT=""
fi
# A test root must carry its own user database: useradd --prefix edits DIR/etc/passwd.
if [[ -n $ROOT && ! -f $ROOT/etc/passwd ]]; then
    die "--root $ROOT: no etc/passwd there (seed etc/passwd, group, shadow, gshadow first)"
fi

VENV=$PREFIX/venv
# Arguments that point the shadow tools and systemctl at ROOT instead of the running system.
USER_TOOL_ROOT=()
SYSTEMCTL_ROOT=()
if [[ -n $ROOT ]]; then
    USER_TOOL_ROOT=(--prefix "$ROOT")
    SYSTEMCTL_ROOT=(--root="$ROOT")
fi

# --- helpers ------------------------------------------------------------------------------------

# Look users/groups up in ROOT's database, never the host's (they differ under --root).
user_exists() { grep -q "^$1:" "$ROOT/etc/passwd"; }
group_exists() { grep -q "^$1:" "$ROOT/etc/group"; }
uid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/passwd"; }
gid_of() { awk -F: -v n="$1" '$1 == n { print $3 }' "$ROOT/etc/group"; }

systemctl_run() {
    ((USE_SYSTEMCTL)) || return 0
    command -v systemctl >/dev/null || { say "systemctl not found; skipping: systemctl $*"; return 0; }
    systemctl "${SYSTEMCTL_ROOT[@]}" "$@"
}

# Only a running system manager can reload/restart; an offline --root cannot.
systemd_running() { [[ -z $ROOT && -d /run/systemd/system ]]; }

ensure_user() {
    group_exists video || groupadd "${USER_TOOL_ROOT[@]}" --system video
    if user_exists "$SERVICE_USER"; then
        usermod "${USER_TOOL_ROOT[@]}" --append --groups video "$SERVICE_USER"
    else
        useradd "${USER_TOOL_ROOT[@]}" --system --user-group --groups video \
            --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin \
            --comment "edgeface face recognition daemon" "$SERVICE_USER"
        say "created system user $SERVICE_USER"
    fi
}

# A venv for PYTHON at $1, reused when it already exists and is recent enough.
make_venv() {
    local dir=$1
    if [[ -x $dir/bin/python ]] && "$dir/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        return 0
    fi
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "$PYTHON is older than 3.11; pass --python"
    rm -rf "$dir"
    "$PYTHON" -m venv "${VENV_OPTS[@]}" "$dir"
}

package_spec() {
    local extras=$1
    if [[ -n $extras ]]; then echo "$CHECKOUT[$extras]"; else echo "$CHECKOUT"; fi
}

build_models() {
    local models=$ROOT$STATE_DIR/models builder
    # TensorFlow (~600 MB) is only needed to convert models: it goes into a throwaway venv
    # and never into the device venv.
    builder=$(mktemp -d "${TMPDIR:-/tmp}/edgeface-build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: the trap must remove this very directory.
    trap "rm -rf '$builder'" EXIT
    say "building models into $models (temporary build venv in $builder)"
    make_venv "$builder/venv"
    "$builder/venv/bin/python" -m pip install --quiet "${PIP_OPTS[@]}" "$(package_spec build)"
    install -d -m 0750 "$models"
    EDGEFACE_MODEL_CACHE=$models "$builder/venv/bin/edgeface" models build
    rm -rf "$builder"
    trap - EXIT
}

# --- uninstall ----------------------------------------------------------------------------------

if ((UNINSTALL)); then
    if [[ -e $ROOT$UNIT_DIR/$UNIT ]]; then
        if systemd_running; then
            systemctl_run disable --now "$UNIT" || true
        else
            systemctl_run disable "$UNIT" || true
        fi
        rm -f "$ROOT$UNIT_DIR/$UNIT"
        if systemd_running; then systemctl_run daemon-reload; fi
        say "removed $UNIT_DIR/$UNIT"
    fi
    rm -rf "${ROOT}${VENV:?}"
    rmdir "$ROOT$PREFIX" 2>/dev/null || true
    if user_exists "$SERVICE_USER"; then
        userdel "${USER_TOOL_ROOT[@]}" "$SERVICE_USER"
        say "removed user $SERVICE_USER"
    fi
    # userdel drops the user's own group only when login.defs says USERGROUPS_ENAB yes.
    if group_exists "$SERVICE_USER"; then
        groupdel "${USER_TOOL_ROOT[@]}" "$SERVICE_USER"
    fi
    if ((PURGE)); then
        rm -rf "${ROOT}${ETC_DIR:?}" "${ROOT}${STATE_DIR:?}"
        say "purged $ETC_DIR and $STATE_DIR"
    else
        say "kept $ETC_DIR and $STATE_DIR (use --purge to delete them)"
    fi
    exit 0
fi

# --- install ------------------------------------------------------------------------------------

[[ -f $CHECKOUT/pyproject.toml ]] || die "$CHECKOUT does not look like an edgeface checkout"
[[ -f $CHECKOUT/config/edgeface.yaml ]] || die "$CHECKOUT/config/edgeface.yaml is missing"

ensure_user
uid=$(uid_of "$SERVICE_USER")
gid=$(gid_of "$SERVICE_USER")

say "installing $CHECKOUT into $ROOT$VENV"
install -d -m 0755 "$ROOT$PREFIX"
make_venv "$ROOT$VENV"
"$ROOT$VENV/bin/python" -m pip install --quiet --upgrade "${PIP_OPTS[@]}" "$(package_spec "$EXTRAS")"

# Numeric ids: under --root the names exist only in ROOT's database, not the host's.
install -d -m 0750 -o 0 -g "$gid" "$ROOT$ETC_DIR"
if [[ -e $ROOT$ETC_DIR/edgeface.yaml ]]; then
    say "kept existing $ETC_DIR/edgeface.yaml"
else
    install -m 0640 -o 0 -g "$gid" "$CHECKOUT/config/edgeface.yaml" "$ROOT$ETC_DIR/edgeface.yaml"
    say "installed default config $ETC_DIR/edgeface.yaml (edit mqtt.host before starting)"
fi

install -d -m 0700 -o "$uid" -g "$gid" "$ROOT$STATE_DIR"
install -d -m 0750 -o "$uid" -g "$gid" "$ROOT$STATE_DIR/gallery" "$ROOT$STATE_DIR/models"

if ((SKIP_MODELS)); then
    say "skipping model build (--skip-models)"
elif [[ -n $MODELS_BUNDLE ]]; then
    say "importing models from $MODELS_BUNDLE into $STATE_DIR/models"
    "$ROOT$VENV/bin/edgeface" models import "$MODELS_BUNDLE" --cache-dir "$ROOT$STATE_DIR/models" \
        ${MODELS_SHA256:+--sha256 "$MODELS_SHA256"}
else
    build_models
fi
# The model build ran as root; the daemon must own (and may rewrite) its cache.
chown -R "$uid:$gid" "$ROOT$STATE_DIR/models"

install -d -m 0755 "$ROOT$UNIT_DIR"
unit_tmp=$(mktemp)
# Keep ExecStart in step with --prefix.
sed "s#/opt/edgeface/venv/#$VENV/#g" "$CHECKOUT/deploy/$UNIT" >"$unit_tmp"
install -m 0644 "$unit_tmp" "$ROOT$UNIT_DIR/$UNIT"
rm -f "$unit_tmp"
say "installed $UNIT_DIR/$UNIT"

if systemd_running; then systemctl_run daemon-reload; fi
systemctl_run enable "$UNIT"
# An upgrade restarts a running daemon; a first install waits for the admin to edit the config.
if systemd_running; then systemctl_run try-restart "$UNIT"; fi
say "done. Start with: systemctl start edgeface; logs: journalctl -u edgeface -f"
