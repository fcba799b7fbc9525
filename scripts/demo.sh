#!/usr/bin/env bash
# The demo is the seed's sentence: five LAMP stacks (MariaDB + Apache/PHP) and two load balancers
# (HAProxy), examples/seed.yml, on a 4-host local lab (network namespaces, each with its own dockerd
# over TLS; site.yml bootstraps etcd on them). Real images built here from Debian 12 packages.
# It prints the placement and requests through both load balancers: all five instances answer, each
# counting its own visits in its own database. Run it again: the converge reports changed=0.
#   scripts/demo.sh          build the images (once per machine), bring up (or reuse) the lab, converge
#   scripts/demo.sh down     tear the lab down
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (the lab creates network namespaces and daemons)" >&2; exit 2; }

LAB_NAME=${STACKFLEET_DEMO_LAB:-sf}
LAB_SUBNET=${STACKFLEET_DEMO_SUBNET:-10.231.0.0/24}
LAB_HOSTS=${STACKFLEET_DEMO_HOSTS:-4}
inventory=inventories/demo
secrets=$inventory/group_vars/all/secrets.yml

./scripts/setup.sh >/dev/null
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
# requests lets these override the lab CA given to TLS clients; the lab's CA is explicit.
unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE

if [ "${1:-up}" = down ]; then
  python tests/lab/lab.py down --name "$LAB_NAME"
  rm -f "$inventory/hosts.yml"
  exit 0
fi

echo "== images (built once per machine from Debian 12 packages, then cached)"
python tests/lab/lab_lamp_images.py build
python tests/lab/lab.py up --name "$LAB_NAME" --subnet "$LAB_SUBNET" --hosts "$LAB_HOSTS" --images lamp
ln -sfn "/tmp/stackfleet-lab/$LAB_NAME/inventory.yml" "$inventory/hosts.yml"
if [ ! -s "$secrets" ]; then
  # The databases' passwords, drawn once. In real use: ansible-vault, or an AWX credential (docs/awx.md).
  ( umask 077; python3 -c 'import secrets; print("---\n# Written by scripts/demo.sh (git-ignored).\nstackfleet_secrets:\n"
    "  db_password: %s\n  db_root_password: %s" % (secrets.token_urlsafe(18), secrets.token_urlsafe(18)))' > "$secrets" )
fi

ansible-playbook -i "$inventory" playbooks/site.yml

echo
echo "== placement (from the inventory plugin, stable against what runs)"
ansible-inventory -i "$inventory" --list > /tmp/stackfleet-demo-inventory.json
python3 - /tmp/stackfleet-demo-inventory.json <<'PY'
import json, sys
def plain(value):
    """ansible-inventory marks untrusted values as {"__ansible_unsafe": ...}; show the text."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value
inv = plain(json.load(open(sys.argv[1])))
hostvars = inv["_meta"]["hostvars"]
print("%-8s %-12s %s" % ("host", "address", "containers (published host ports)"))
for name in sorted(hostvars):
    hv = hostvars[name]
    if "stackfleet_containers" not in hv:
        continue
    shown = []
    for doc in hv["stackfleet_containers"]:
        ports = ",".join(str(p["host_port"]) for p in doc.get("ports") or [] if p.get("host_port"))
        shown.append("%s%s" % (doc["name"], ":" + ports if ports else ""))
    print("%-8s %-12s %s" % (name, hv.get("ansible_host", ""), "  ".join(shown) or "-"))
lbs = inv.get("stackfleet_lb", {}).get("hosts", [])
webs = {doc["instance"] for hv in hostvars.values() for doc in hv.get("stackfleet_containers", []) if doc["service"] == "web"}
open("/tmp/stackfleet-demo-lbs", "w").write("%d %s\n" % (len(webs), " ".join(hostvars[h]["ansible_host"] for h in sorted(lbs))))
PY
read -r want lbs_line < /tmp/stackfleet-demo-lbs
read -r -a lbs <<<"$lbs_line"
[ "${#lbs[@]}" -gt 0 ] || { echo "demo.sh: no load balancer in the placement" >&2; exit 1; }

echo
echo "== HTTP through each load balancer: every instance answers, counting its own visits in its own MariaDB"
for lb in "${lbs[@]}"; do
  echo "-- http://$lb/"
  seen=" "
  for _ in $(seq 1 40); do  # bounded: a new instance may still be starting; each answer is printed once per instance
    line=$(curl -fsS --max-time 5 "http://$lb/" 2>/dev/null || true)
    instance=${line%% *}
    if [ -n "$line" ] && [[ "$seen" != *" $instance "* ]]; then
      echo "   $line"
      seen="$seen$instance "
    fi
    [ "$(wc -w <<<"$seen")" -ge "$want" ] && break
    sleep 0.2
  done
  [ "$(wc -w <<<"$seen")" -ge "$want" ] || { echo "demo.sh: only$seen answered through $lb" >&2; exit 1; }
done
echo
echo "Run scripts/demo.sh again: the converge reports changed=0. What runs where, healthy or not:"
echo "  ansible-playbook -i $inventory playbooks/status.yml      Tear down: scripts/demo.sh down"
