#!/usr/bin/env bash
# Remove Edge Metrics Server from the current kubectl context, in the reverse order of
# scripts/deploy.sh.
#
# Usage: scripts/undeploy.sh
#
# Deletes the ServiceMonitor, the CronJob, the Deployment, the Service and the ConfigMap,
# waits up to 60 s for the pods to go, deletes the PVC when asked, then the RBAC objects,
# and lists what is left. The namespace, the Secret edge-metrics-server and the device
# Services/Endpoints/EndpointSlices the server created are left in place (listed at the end).
#
# Environment:
#   NAMESPACE     namespace to remove it from (default monitoring)
#   DELETE_PVC    true: also delete the PersistentVolumeClaim, that is every device config,
#                 revision and API token (default false)
#   DELETE_IMAGE  true: also remove the deployed image from the local Docker (default false)
#   FORCE         true: do not ask for confirmation (default false)
#   DRY_RUN       true: print the kubectl and docker commands instead of running them
#                 (default false)
#
# Examples:
#   scripts/undeploy.sh
#   NAMESPACE=edge DELETE_PVC=true FORCE=true scripts/undeploy.sh

set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

parse_args 0 "$@"

DRY_RUN="$(bool DRY_RUN false)"
DELETE_PVC="$(bool DELETE_PVC false)"
DELETE_IMAGE="$(bool DELETE_IMAGE false)"
FORCE="$(bool FORCE false)"
NAMESPACE="${NAMESPACE:-monitoring}"

check_namespace "$NAMESPACE"
need kubectl
[[ $DELETE_IMAGE == false ]] || need docker

readonly SELECTOR=app.kubernetes.io/instance=edge-metrics-server
readonly PVC=edge-metrics-server-data
readonly SECRET=edge-metrics-server
ns=(--namespace "$NAMESPACE")

# Ask before deleting anything; loudly, and harder to say yes, when the data goes too.
confirm() {
    {
        echo "This removes Edge Metrics Server from namespace $NAMESPACE: ServiceMonitor, CronJob,"
        echo "Deployment, Service, ConfigMap, ServiceAccount, Role and RoleBinding."
        if [[ $DELETE_IMAGE == true ]]; then
            echo "It also removes the deployed image from the local Docker."
        fi
    } >&2
    if [[ $DELETE_PVC == true ]]; then
        cat >&2 <<EOF

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  DELETE_PVC=true: the PersistentVolumeClaim $PVC will be DELETED,
!!  and with it the database: every device config, revision and API token.
!!  This cannot be undone.
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
        printf 'Type the namespace (%s) to delete everything, data included: ' "$NAMESPACE" >&2
        local answer=""
        read -r answer || true
        [[ $answer == "$NAMESPACE" ]] || die "not confirmed; nothing was deleted"
    else
        echo "The PVC $PVC (the database) is kept; DELETE_PVC=true deletes it." >&2
        printf 'Continue? [y/N] ' >&2
        local answer=""
        read -r answer || true
        [[ $answer == y || $answer == Y || $answer == yes ]] || die "not confirmed; nothing was deleted"
    fi
}

if is_dry_run; then
    info "DRY_RUN: printing the commands; nothing is deleted and nothing is asked"
elif [[ $FORCE != true ]]; then
    confirm
fi

# The image is known only while the Deployment exists.
image=""
if [[ $DELETE_IMAGE == true ]]; then
    image="$(query kubectl get deployment/edge-metrics-server "${ns[@]}" -o 'jsonpath={.spec.template.spec.containers[0].image}')"
fi

info "ServiceMonitor (when the Prometheus Operator CRDs are installed)"
run_if kubectl get servicemonitors.monitoring.coreos.com "${ns[@]}" -o name -- \
    kubectl delete servicemonitors.monitoring.coreos.com/edge-exporters "${ns[@]}" --ignore-not-found

info "CronJob, Deployment, Service, ConfigMap"
run kubectl delete cronjob/edge-metrics-sync deployment/edge-metrics-server \
    service/edge-metrics-server configmap/edge-metrics-server "${ns[@]}" --ignore-not-found

info "waiting up to 60 s for the pods to go"
if ! run kubectl wait --for=delete pod --selector "$SELECTOR" "${ns[@]}" --timeout=60s; then
    warn "pods are still terminating after 60 s (listed below)"
fi

if [[ $DELETE_PVC == true ]]; then
    info "PersistentVolumeClaim $PVC"
    run kubectl delete "persistentvolumeclaim/$PVC" "${ns[@]}" --ignore-not-found --wait=false
fi

info "RBAC"
run kubectl delete rolebinding/edge-metrics-manager role/edge-metrics-manager \
    serviceaccount/edge-metrics-server "${ns[@]}" --ignore-not-found

if [[ $DELETE_IMAGE == true ]]; then
    if is_dry_run; then
        run docker image rm '<image of deployment/edge-metrics-server>'
    elif [[ -n $image ]]; then
        run docker image rm "$image" || warn "could not remove $image from the local Docker"
    else
        warn "DELETE_IMAGE=true, but no deployment/edge-metrics-server told which image it ran"
    fi
fi

# A listing that fails (say, the namespace is gone) is reported by kubectl and not fatal.
run_listing() {
    run "$@" || true
}

info "what is left in namespace $NAMESPACE"
run_listing kubectl get all,configmap,persistentvolumeclaim,serviceaccount,role,rolebinding \
    --selector "$SELECTOR" "${ns[@]}"
run_listing kubectl get "secret/$SECRET" "${ns[@]}" --ignore-not-found
run_listing kubectl get services,endpoints,endpointslices.discovery.k8s.io \
    --selector managed_by=edge-metrics-server "${ns[@]}"
{
    echo
    echo "Kept: the namespace $NAMESPACE$([[ $DELETE_PVC == true ]] || echo ", the PVC $PVC (DELETE_PVC=true deletes it)")."
    echo "The Secret $SECRET, if you created one: kubectl --namespace $NAMESPACE delete secret/$SECRET"
    echo "Device objects published by the server, if any:"
    echo "  kubectl --namespace $NAMESPACE delete services,endpoints,endpointslices.discovery.k8s.io --selector managed_by=edge-metrics-server"
} >&2
