#!/usr/bin/env bash
# Build the Edge Metrics Server container image.
#
# Usage: scripts/build.sh [VERSION]
#
# Tags the image [$REGISTRY/]edge-metrics-server:$VERSION; VERSION defaults to the version
# in pyproject.toml. Needs Docker 23+ (BuildKit).
#
# Environment:
#   REGISTRY   registry and path to tag and push to, e.g. registry.example.com:5000/team
#   PUSH       true: push the image to REGISTRY after building (default false)
#   PLATFORM   build with buildx for these platforms, e.g. linux/amd64,linux/arm64;
#              several platforms need PUSH=true (the local image store holds one)
#   DRY_RUN    true: print the docker commands instead of running them (default false)
#
# Examples:
#   scripts/build.sh
#   REGISTRY=registry.example.com/team PUSH=true PLATFORM=linux/amd64,linux/arm64 scripts/build.sh 2.0.1

set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args 1 "$@"

DRY_RUN="$(bool DRY_RUN false)"
PUSH="$(bool PUSH false)"
REGISTRY="${REGISTRY:-}"
REGISTRY="${REGISTRY%/}"
PLATFORM="${PLATFORM:-}"
VERSION="${1:-$(project_version)}"

check_version "$VERSION"
check_registry "$REGISTRY"
[[ -z $PLATFORM || $PLATFORM =~ ^[a-z0-9/_.-]+(,[a-z0-9/_.-]+)*$ ]] ||
    die "PLATFORM '$PLATFORM' must be a comma-separated list like linux/amd64,linux/arm64"
if [[ $PUSH == true && -z $REGISTRY ]]; then
    die "PUSH=true needs REGISTRY (the image would go to Docker Hub's library otherwise)"
fi
if [[ $PLATFORM == *,* && $PUSH != true ]]; then
    die "a multi-platform build ($PLATFORM) cannot be loaded into the local Docker: set PUSH=true and REGISTRY"
fi
need docker

image="$(image_ref "$VERSION" "$REGISTRY")"
labels=(--label "org.opencontainers.image.version=$VERSION")

info "building $image${PLATFORM:+ for $PLATFORM}"
if [[ -n $PLATFORM ]]; then
    if [[ $PUSH == true ]]; then
        output=--push
    else
        output=--load
    fi
    run docker buildx build --platform "$PLATFORM" --tag "$image" "${labels[@]}" "$output" "$ROOT"
else
    run docker build --tag "$image" "${labels[@]}" "$ROOT"
    if [[ $PUSH == true ]]; then
        run docker push "$image"
    fi
fi
info "image: $image"
