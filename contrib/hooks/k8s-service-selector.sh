#!/bin/sh
# [hook.switch-traffic] for Kubernetes: point a Service at the pods of the
# new primary site by patching its selector.
#
#   [hook.switch-traffic]
#   command = K8S_NAMESPACE=platform K8S_SERVICE=postgres-rw \
#             /usr/share/tidemark/hooks/k8s-service-selector.sh
#
# Needs: kubectl with a context allowed to patch the Service. The pods of
# each site carry the label K8S_LABEL (default tidemark.io/site) with the
# site's name as configured in [site.NAME].
set -eu
: "${K8S_SERVICE:?set K8S_SERVICE}" "${TM_DR_NEW_PRIMARY:?run me from tidemark-failoverd}"
ns=${K8S_NAMESPACE:-default}
label=${K8S_LABEL:-tidemark.io/site}
patch=$(printf '{"spec":{"selector":{"%s":"%s"}}}' "$label" "$TM_DR_NEW_PRIMARY")
kubectl --namespace "$ns" patch service "$K8S_SERVICE" --type merge --patch "$patch"
# wait until the Service has endpoints again: traffic is switched only then
for _ in $(seq 1 60); do
        eps=$(kubectl --namespace "$ns" get endpoints "$K8S_SERVICE" \
                -o jsonpath='{.subsets[*].addresses[*].ip}' 2>/dev/null || true)
        [ -n "$eps" ] && { echo "service $ns/$K8S_SERVICE -> site $TM_DR_NEW_PRIMARY ($eps)"; exit 0; }
        sleep 1
done
echo "service $ns/$K8S_SERVICE has no endpoints for site $TM_DR_NEW_PRIMARY after 60 s" >&2
exit 1
