#!/usr/bin/env bash
# Checks the deployment files of deploy/ without AWS, Kubernetes or Docker:
#
#   scripts/deploy-check.sh                  everything in deploy/ (make deploy-check)
#   scripts/deploy-check.sh cfn FILE...      cfn-lint on CloudFormation/SAM templates
#   scripts/deploy-check.sh k8s FILE...      kubeconform -strict, schemas from deploy/k8s/schemas
#   scripts/deploy-check.sh docker FILE...   Dockerfile rules (and hadolint when installed)
#   scripts/deploy-check.sh lambda DIR       the bootstrap binaries of make lambda
#
# Exits non-zero, naming the file, on the first kind of check that fails. The IAM policies
# of the templates are compared with deploy/README.md by deploy/deploy_test.go (go test).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
KUBECONFORM_VERSION=v0.7.0

die() { echo "deploy-check: $*" >&2; exit 1; }

check_cfn() {
  if ! command -v cfn-lint >/dev/null 2>&1; then
    echo "deploy-check: cfn-lint is not installed; trying pip install cfn-lint" >&2
    python3 -m pip install --quiet cfn-lint >&2 || die "cfn-lint is required and could not be installed (python3 -m pip install cfn-lint)"
    command -v cfn-lint >/dev/null 2>&1 || die "cfn-lint installed but not on PATH"
  fi
  # Warnings fail too: a template that cfn-lint warns about does not ship.
  cfn-lint --format parseable -- "$@" || die "cfn-lint found problems in: $*"
  echo "cfn-lint: $# templates ok"
}

check_k8s() {
  local schemas=$root/deploy/k8s/schemas f files=()
  for f in "$@"; do
    case $f in /*) files+=("$f") ;; *) files+=("$PWD/$f") ;; esac
  done
  set -- "${files[@]}"
  (cd "$root" && go run "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
    -strict -summary -output text \
    -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$schemas/{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json" \
    "$@") || die "kubeconform found invalid manifests in: $*"
}

# check_dockerfile applies the rules hadolint would flag most for this image, since
# hadolint itself is not in the registries these machines reach (it is a Haskell binary
# distributed on GitHub and PyPI): every base image pinned to a version (no latest, no
# bare name), a multi-stage build whose final stage is distroless/static or scratch,
# a numeric non-root USER in the final stage, CGO off, no ADD from URLs, exec-form
# ENTRYPOINT, no default for BuildKit's TARGET* platform args (it would win over
# --platform). hadolint runs as well when it is on PATH.
check_dockerfile() {
  local f bad=0
  for f in "$@"; do
    if command -v hadolint >/dev/null 2>&1; then
      hadolint "$f" || bad=1
    fi
    awk -v file="$f" '
      function fail(msg) { printf "%s:%d: %s\n", file, NR, msg; bad = 1 }
      { sub(/\r$/, "") }
      /^[[:space:]]*#/ || /^[[:space:]]*$/ { next }
      toupper($1) == "FROM" {
        froms++
        img = $2; i = 2
        while (img ~ /^--/) { i++; img = $i }
        if (tolower($(i+1)) == "as") stages[tolower($(i+2))] = 1
        last = img; user = ""
        if (img in stages) next
        if (img !~ /@sha256:[0-9a-f]{64}$/) {
          n = split(img, parts, "/"); name = parts[n]
          if (name !~ /:/) fail("FROM " img ": pin the image to a version tag or digest")
          else if (name ~ /:latest$/) fail("FROM " img ": latest is not a pinned version")
        }
        next
      }
      toupper($1) == "USER" { user = $2; next }
      toupper($1) == "ARG" {
        for (i = 2; i <= NF; i++) if ($i ~ /^TARGET(OS|ARCH|PLATFORM|VARIANT)=/) fail("ARG " $i ": a default wins over docker build --platform; declare it without one")
        next
      }
      toupper($1) == "ADD" && $0 ~ /https?:\/\// { fail("ADD from a URL: download in a build stage with a checksum instead") }
      toupper($1) == "ENTRYPOINT" { entry = $0; if ($2 !~ /^\[/) fail("ENTRYPOINT must be exec form [\"...\"]") }
      /CGO_ENABLED=0/ { cgo = 1 }
      END {
        if (froms < 2) fail("want a multi-stage build: compile in one stage, ship the binary in a small one")
        if (last !~ /^(gcr\.io\/distroless\/static|scratch$|cgr\.dev\/chainguard\/static)/) fail("final stage " last ": want distroless/static or scratch")
        if (user == "") fail("final stage has no USER: the image would run as root")
        else if (user !~ /^[1-9][0-9]*(:[1-9][0-9]*)?$/) fail("USER " user ": want a numeric non-root uid[:gid] (Kubernetes runAsNonRoot checks numbers)")
        if (!cgo) fail("no CGO_ENABLED=0: the binary must be static")
        if (entry == "") fail("no ENTRYPOINT")
        exit bad
      }' "$f" || bad=1
  done
  [ "$bad" = 0 ] || die "Dockerfile check failed: $*"
  echo "Dockerfile: $# files ok"
}

# check_lambda: both bootstrap binaries exist, are Go binaries, ELF for linux on their
# architecture and statically linked (file), built with CGO off and the lambda.norpc tag
# (go version -m).
check_lambda() {
  local dir=$1 arch want info
  command -v file >/dev/null 2>&1 || die "file is required to check the Lambda binaries (apt-get install file)"
  for arch in arm64 amd64; do
    local bin=$dir/$arch/bootstrap
    [ -x "$bin" ] || die "$bin: missing (make lambda)"
    local buildinfo
    buildinfo=$(go version -m "$bin") || die "$bin: not a Go binary"
    info=$(file -b "$bin")
    case $arch in
      arm64) grep -q 'ELF 64-bit.*aarch64' <<<"$info" || die "$bin: not an arm64 binary: $info" ;;
      amd64) grep -q 'ELF 64-bit.*x86-64' <<<"$info" || die "$bin: not an amd64 binary: $info" ;;
    esac
    grep -q 'statically linked' <<<"$info" || die "$bin: not statically linked: $info"
    for want in "build	CGO_ENABLED=0" "build	GOOS=linux" "build	GOARCH=$arch" "build	-tags=lambda.norpc"; do
      grep -qF "$want" <<<"$buildinfo" || die "$bin: go version -m lacks '$want'"
    done
    if command -v unzip >/dev/null 2>&1 && [ -f "$dir/$arch/snapfleet.zip" ]; then
      info=$(unzip -Z1 "$dir/$arch/snapfleet.zip") || die "$dir/$arch/snapfleet.zip: unreadable"
      grep -qx bootstrap <<<"$info" || die "$dir/$arch/snapfleet.zip has no bootstrap at its root"
    fi
  done
  echo "lambda: static linux bootstrap for arm64 and amd64 ok"
}

cmd=${1:-all}
[ $# -gt 0 ] && shift
case $cmd in
  cfn) check_cfn "$@" ;;
  k8s) check_k8s "$@" ;;
  docker) check_dockerfile "$@" ;;
  lambda) check_lambda "${1:-$root/bin/lambda}" ;;
  all)
    cd "$root"
    check_cfn deploy/*.yaml
    check_k8s deploy/k8s/*.yaml
    check_dockerfile deploy/Dockerfile
    ;;
  *) die "unknown check $cmd: want cfn, k8s, docker, lambda or nothing for all" ;;
esac
