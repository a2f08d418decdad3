#!/usr/bin/env bash
# The deployment definitions hold together (issue 9, items 1 and 2):
#   - every Kubernetes manifest passes yamllint (contrib/deploy/.yamllint);
#   - deployment-manifest.yaml is what assemble.sh makes of its parts;
#   - every document decodes as a Kubernetes object (kubectl, offline), and
#     the spec's contract holds: namespace, labels, the four Services on
#     8080, the Secret's keys, the ConfigMap, /health probes, requests and
#     limits, a non-root read-only sandbox, network policies, scrape
#     annotations, the verification job, the privileged FUSE restore pod;
#   - the ConfigMap's tidemark.conf passes tidemark-backupd --check-config;
#   - the Containerfile is multi-stage, Debian 12, non-root, and installs
#     a runtime package for every shared library the built programs link.
# usage: check-deploy.sh SRC_DIR BIN_DIR
set -euo pipefail
SRC=${1:?source dir}
BIN=${2:?bin dir}
K=$SRC/contrib/deploy/kubernetes
T=$(mktemp -d "${TMPDIR:-/tmp}/tm-check-deploy.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

command -v yamllint >/dev/null || fail "yamllint missing (scripts/deps.sh installs it)"
yamllint -s -c "$SRC/contrib/deploy/.yamllint" "$K"/*.yaml || fail "yamllint"
echo "yamllint: ok ($(ls "$K"/*.yaml | wc -l) files)"

cp -r "$K" "$T/k"
bash "$T/k/assemble.sh"
diff -u "$K/deployment-manifest.yaml" "$T/k/deployment-manifest.yaml" ||
        fail "deployment-manifest.yaml is stale: run contrib/deploy/kubernetes/assemble.sh"
echo "deployment-manifest.yaml: up to date"

# kubectl: `apply --dry-run=client` still asks a server for the API group
# list, so it cannot work without a cluster; point it at a closed port (never
# at a default localhost:8080, where a test daemon may listen) and fall back
# to `label --local`, which decodes every document offline.
if command -v kubectl >/dev/null; then
        cat >"$T/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
users: [{name: none, user: {}}]
current-context: none
KC
        export KUBECONFIG=$T/kubeconfig
        # the parts are checked inside deployment-manifest.yaml (their objects
        # are identical, see below): two files, and `apply` is tried once
        how=
        for f in "$K/deployment-manifest.yaml" "$K/restore-fuse-pod.yaml"; do
                n=$(grep -c '^kind:' "$f")
                if [[ -z $how || $how == apply ]] &&
                        timeout 30 kubectl apply --dry-run=client --validate=false -f "$f" -o name \
                                >"$T/k.out" 2>"$T/k.err"; then
                        how=apply
                else
                        [[ $how == apply ]] && { cat "$T/k.err" >&2; fail "kubectl apply --dry-run: $f"; }
                        how=label
                        timeout 30 kubectl label --local -f "$f" tidemark.io/checked=yes -o name \
                                >"$T/k.out" 2>"$T/k.err" || { cat "$T/k.err" >&2; fail "kubectl: $f"; }
                fi
                [[ $(grep -c . "$T/k.out") -eq $n ]] ||
                        { cat "$T/k.out" "$T/k.err" >&2; fail "kubectl decoded $(grep -c . "$T/k.out") of $n objects in $f"; }
                echo "kubectl ${how/label/label --local} (offline): $(basename "$f"): $n objects"
        done
else
        echo "kubectl absent: offline decoding skipped"
fi

python3 - "$K" "$T/tidemark.conf" <<'PY'
import sys, yaml
K, conf_out = sys.argv[1], sys.argv[2]
errors = []
def err(m): errors.append(m)
def load(name):
    with open(f"{K}/{name}") as f:
        return [d for d in yaml.safe_load_all(f) if d]
docs = load("deployment-manifest.yaml")
parts = {p: load(p) for p in ["backup-orchestrator.yaml", "dr-orchestrator.yaml",
                              "business-continuity-manager.yaml",
                              "monitoring-alerting-system.yaml", "verification-job.yaml"]}
for p, ds in parts.items():
    for d in ds:
        if d not in docs:
            err(f"{p}: {d['kind']}/{d['metadata']['name']} is not in deployment-manifest.yaml")
by = {}
for d in docs:
    by.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    md = d["metadata"]
    if d["kind"] != "Namespace":
        if md.get("namespace") != "developer-portal":
            err(f"{d['kind']}/{md['name']}: namespace {md.get('namespace')}")
        if md.get("labels", {}).get("component") != "disaster-recovery":
            err(f"{d['kind']}/{md['name']}: no label component=disaster-recovery")
if "developer-portal" not in by.get("Namespace", {}):
    err("no Namespace developer-portal")

SPEC_KEYS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_HOST",
             "POSTGRES_PASSWORD", "SLACK_WEBHOOK_URL"}
sec = by.get("Secret", {}).get("dr-system-secrets")
if not sec:
    err("no Secret dr-system-secrets")
else:
    keys = set(sec["metadata"]["annotations"]["tidemark.io/keys"].split(","))
    if not SPEC_KEYS <= keys:
        err(f"dr-system-secrets lacks the spec's keys {SPEC_KEYS - keys}")
    if sec.get("data") or sec.get("stringData"):
        err("dr-system-secrets carries values: an apply would overwrite the real ones")
cm = by.get("ConfigMap", {}).get("tidemark-config")
if not cm or "tidemark.conf" not in cm.get("data", {}):
    err("no ConfigMap tidemark-config with tidemark.conf")
else:
    open(conf_out, "w").write(cm["data"]["tidemark.conf"])

deps = by.get("Deployment", {})
for name in ["backup-orchestrator", "dr-orchestrator", "dr-monitoring-system"]:
    if name not in deps:
        err(f"no Deployment {name} (the spec's kubectl logs/exec name it)")
want_svc = {"backup-orchestrator": "tidemark-backupd", "dr-orchestrator": "tidemark-failoverd",
            "business-continuity-manager": "tidemark-monitord",
            "dr-monitoring-system": "tidemark-monitord"}
svcs = by.get("Service", {})
if set(svcs) != set(want_svc):
    err(f"Services {sorted(svcs)}, want {sorted(want_svc)}")
for name, app in want_svc.items():
    s = svcs.get(name)
    if not s:
        continue
    if [p["port"] for p in s["spec"]["ports"]] != [8080]:
        err(f"Service {name}: ports {s['spec']['ports']}")
    sel = s["spec"]["selector"]
    backs = [d for d in deps.values()
             if all(d["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
    if len(backs) != 1:
        err(f"Service {name}: selector {sel} matches {len(backs)} Deployments")
    elif backs[0]["spec"]["template"]["spec"]["containers"][0]["command"][0] != app:
        err(f"Service {name}: its pods do not run {app}")
    if s["metadata"].get("annotations", {}).get("prometheus.io/scrape") != "true":
        err(f"Service {name}: no scrape annotation")

for name, d in deps.items():
    pod = d["spec"]["template"]
    ps = pod["spec"]
    if pod["metadata"].get("annotations", {}).get("prometheus.io/path") != "/metrics":
        err(f"{name}: no prometheus.io annotations on the pods")
    psc = ps.get("securityContext", {})
    if not psc.get("runAsNonRoot") or not psc.get("runAsUser"):
        err(f"{name}: pods may run as root")
    if ps.get("automountServiceAccountToken") is not False:
        err(f"{name}: mounts a service account token")
    mounted = {v["name"]: v for v in ps.get("volumes", [])}
    for c in ps["containers"]:
        where = f"{name}/{c['name']}"
        for probe in ["livenessProbe", "readinessProbe"]:
            if c.get(probe, {}).get("httpGet", {}).get("path") != "/health":
                err(f"{where}: {probe} is not GET /health")
        for kind in ["requests", "limits"]:
            r = c.get("resources", {}).get(kind, {})
            if "cpu" not in r or "memory" not in r:
                err(f"{where}: no cpu/memory {kind}")
        sc = c.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False or not sc.get("readOnlyRootFilesystem") \
                or sc.get("capabilities", {}).get("drop") != ["ALL"]:
            err(f"{where}: container sandbox incomplete: {sc}")
        if c["command"][1:3] != ["-c", "/etc/tidemark/tidemark.conf"]:
            err(f"{where}: does not read /etc/tidemark/tidemark.conf")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        if mounted.get(mounts.get("/etc/tidemark"), {}).get("configMap", {}).get("name") != "tidemark-config":
            err(f"{where}: /etc/tidemark is not the tidemark-config ConfigMap")
        if [p["containerPort"] for p in c["ports"]] != [8080]:
            err(f"{where}: does not listen on 8080")
        refs = {e["valueFrom"]["secretKeyRef"]["key"] for e in c.get("env", [])
                if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == "dr-system-secrets"}
        if not SPEC_KEYS <= refs:
            err(f"{where}: does not read {SPEC_KEYS - refs} from dr-system-secrets")

pols = by.get("NetworkPolicy", {}).values()
deny = [p for p in pols if p["spec"]["podSelector"].get("matchLabels") == {"component": "disaster-recovery"}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")]
if not deny:
    err("no default-deny NetworkPolicy for component=disaster-recovery")
if not any(port.get("port") == 8080 for p in pols for rule in p["spec"].get("ingress", [])
           for port in rule.get("ports", [])):
    err("no NetworkPolicy lets port 8080 in")

job = by.get("Job", {}).get("dr-verification")
if not job:
    err("no Job dr-verification")
else:
    script = " ".join(job["spec"]["template"]["spec"]["containers"][0]["args"])
    for s in want_svc:
        if f"curl -f http://{s}:8080/health" not in script:
            err(f"dr-verification does not check {s}")
    if job["spec"]["template"]["metadata"]["labels"].get("component") != "disaster-recovery":
        err("dr-verification: the network policies would keep it out")

fuse = load("restore-fuse-pod.yaml")
if len(fuse) != 1 or fuse[0]["kind"] != "Pod":
    err("restore-fuse-pod.yaml: one Pod expected")
else:
    c = fuse[0]["spec"]["containers"][0]
    if not c["securityContext"].get("privileged") or \
            not any(v.get("hostPath", {}).get("path") == "/dev/fuse" for v in fuse[0]["spec"]["volumes"]):
        err("restore-fuse-pod.yaml: not privileged with /dev/fuse")
    if fuse[0] in docs:
        err("the privileged restore pod must stay out of deployment-manifest.yaml")
if errors:
    print("\n".join("manifest: " + e for e in errors), file=sys.stderr)
    sys.exit(1)
print(f"manifests: {len(docs)} objects, the spec's contract holds")
PY

# every daemon built here accepts the ConfigMap's file
for d in tidemark-backupd tidemark-failoverd tidemark-monitord; do
        [[ -x $BIN/$d ]] || continue
        "$BIN/$d" --check-config -c "$T/tidemark.conf" >"$T/check.out" 2>&1 ||
                { cat "$T/check.out" >&2; fail "$d refuses the ConfigMap's tidemark.conf"; }
        echo "$d --check-config: $(tail -n 1 "$T/check.out")"
done

# ---- Containerfile
C=$SRC/contrib/deploy/Containerfile
[[ $(grep -c '^FROM debian:12' "$C") -ge 2 ]] || fail "Containerfile: not a multi-stage Debian 12 build"
user=$(awk '$1 == "USER" { u = $2 } END { print u }' "$C")
[[ -n $user && ${user%%:*} != 0 && ${user%%:*} != root ]] || fail "Containerfile: runs as '$user'"
# pkgs_of STAGE_REGEX: the packages the apt-get install of that stage names
# (from the install line to the line that empties the apt lists)
pkgs_of() {
        awk -v stage="$1" '/^FROM / { in_stage = ($0 ~ stage) } in_stage && /apt-get install/ { on = 1 }
                           on && /rm -rf \/var\/lib\/apt\/lists/ { on = 0 } on { print }' "$C" |
                tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' | grep -vE '^(apt-get|install)$' || true
}
runtime=$(pkgs_of '^FROM debian:12-slim')
[[ -n $runtime ]] || fail "Containerfile: no runtime package list found"
# the libraries the programs link directly (NEEDED) must each come from a
# package the runtime stage installs; their own dependencies follow by apt.
# One dpkg -S for all of them (it is slow), under both names merged /usr gives.
declare -A lib_path=()
for exe in "$BIN"/tidemark "$BIN"/tidemark-*; do
        [[ -x $exe && ! -d $exe ]] || continue
        needed=$(readelf -d "$exe" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
        while read -r lib path; do
                grep -qx "$lib" <<<"$needed" && lib_path[$lib]=$path
        done < <(ldd "$exe" | awk '$2 == "=>" { print $1, $3 }')
done
cands=()
for p in "${lib_path[@]}"; do cands+=("$p" "${p#/usr}" "/usr$p"); done
dpkg -S "${cands[@]}" 2>/dev/null | sed 's/:[a-z0-9]*: / /; s/: / /' >"$T/owners" || true
missing=()
for lib in "${!lib_path[@]}"; do
        pkg=$(awk -v l="/$lib" 'substr($2, length($2) - length(l) + 1) == l { print $1; exit }' "$T/owners")
        [[ -n $pkg ]] || fail "no Debian package owns $lib (${lib_path[$lib]})"
        case $pkg in libc6 | libgcc-s1) continue ;; esac
        # sanitizer runtimes belong to the ASan build only
        case $pkg in libclang* | libasan* | libubsan* | libllvm*) continue ;; esac
        grep -qx "$pkg" <<<"$runtime" || missing+=("$pkg (for $lib)")
done
((${#missing[@]} == 0)) || fail "Containerfile: no runtime package for: ${missing[*]}"
if apt-cache show libc6 >/dev/null 2>&1; then
        # one call for all (each costs seconds): every name gets a "NAME:" block
        # with a candidate version
        # shellcheck disable=SC2086
        known=$(apt-cache policy $runtime 2>/dev/null |
                awk '/^[^ ].*:$/ { n = substr($0, 1, length($0) - 1) }
                     /^  Candidate:/ && $2 != "(none)" { print n }')
        for p in $runtime; do
                grep -qx "$p" <<<"$known" || fail "Containerfile: no Debian package '$p'"
        done
fi
build=$(pkgs_of ' AS build$')
for p in $build; do
        grep -qw -- "$p" "$SRC/scripts/deps.sh" || fail "Containerfile builds with '$p', which scripts/deps.sh does not list"
done
echo "Containerfile: multi-stage, user $user, $(wc -w <<<"$runtime") runtime packages cover the ${#lib_path[@]} linked libraries"
echo "PASS"
