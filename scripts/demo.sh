#!/usr/bin/env bash
# The demo: a 3-host local lab (network namespaces, each with its own dockerd over TLS), then
# playbooks/site.yml with the LAMP + load-balancer stack of examples/lamp.yml, the placement
# table, and an HTTP request through the load balancer. Run it again: the converge reports changed=0.
#   scripts/demo.sh          bring up (or reuse) the lab and converge
#   scripts/demo.sh down     tear the lab down
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root (the lab creates network namespaces and daemons)" >&2; exit 2; }

LAB_NAME=${STACKFLEET_DEMO_LAB:-sf}
LAB_SUBNET=${STACKFLEET_DEMO_SUBNET:-10.231.0.0/24}
inventory_link=inventories/lab/hosts.yml

./scripts/setup.sh >/dev/null
export PATH="$root/.venv/bin:$PATH" ANSIBLE_CONFIG="$root/ansible.cfg"
# requests lets these override the lab CA given to TLS clients; the lab's CA is explicit.
unset REQUESTS_CA_BUNDLE CURL_CA_BUNDLE

if [ "${1:-up}" = down ]; then
  python tests/lab/lab.py down --name "$LAB_NAME"
  rm -f "$inventory_link"
  exit 0
fi

python tests/lab/lab.py up --name "$LAB_NAME" --subnet "$LAB_SUBNET" --hosts 3
ln -sfn "/tmp/stackfleet-lab/$LAB_NAME/inventory.yml" "$inventory_link"

ansible-playbook -i inventories/lab playbooks/site.yml

echo
echo "== placement (from the inventory plugin, stable against what runs)"
ansible-inventory -i inventories/lab --list > /tmp/stackfleet-demo-inventory.json
python3 - /tmp/stackfleet-demo-inventory.json <<'PY'
import json, sys
def plain(value):
    """ansible-inventory marks untrusted values as {"__ansible_unsafe": ...}; show the text."""
    if isinstance(value, dict):
        return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
    return [plain(v) for v in value] if isinstance(value, list) else value
inv = plain(json.load(open(sys.argv[1])))
hostvars = inv["_meta"]["hostvars"]
print("%-10s %-14s %s" % ("host", "address", "containers"))
for name in sorted(hostvars):
    hv = hostvars[name]
    if "stackfleet_containers" not in hv:
        continue
    names = ", ".join(d["name"] for d in hv["stackfleet_containers"]) or "-"
    print("%-10s %-14s %s" % (name, hv.get("ansible_host", ""), names))
lbs = inv.get("stackfleet_lb", {}).get("hosts", [])
open("/tmp/stackfleet-demo-lb", "w").write(hostvars[lbs[0]]["ansible_host"] if lbs else "")
PY
lb=$(cat /tmp/stackfleet-demo-lb)
[ -n "$lb" ] || { echo "demo.sh: no load balancer in the placement" >&2; exit 1; }
echo
echo "== HTTP through the load balancer on $lb (two requests, round robin)"
for _ in 1 2; do curl -fsS --max-time 5 --retry 10 --retry-delay 1 --retry-all-errors "http://$lb/"; done
echo
echo "Run scripts/demo.sh again: the converge reports changed=0. Tear down: scripts/demo.sh down"
