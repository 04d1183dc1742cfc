#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, idempotently: a no-op (well under a second) when they
# are already installed. `make test` runs it before pytest, so a fresh CI machine needs nothing by hand.
#
#   slurm-wlm (slurmctld, slurmd, the client commands), munge   a one-node SLURM cluster on loopback
#   slurmdbd, mariadb-server                                    SLURM accounting, so that `sacct` works
#   chromium                                                    tests/test_report.py renders the HTML report
#
# tests/test_slurm.py starts (and stops) these daemons itself, by PID, under a temporary directory
# (ci/slurm/cluster.py); installing them must not start any system service, so while apt runs, a
# policy-rc.d that forbids service starts is put in place if the machine has none.
set -euo pipefail

PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
# Headless browser for the report's render test (Debian's chromium; never a downloaded browser build).
REPORT_PACKAGES=(chromium)

# A machine that cannot install them (not root, no sudo) opts out of the SLURM test and of this step
# explicitly; CI never sets it.
if [[ "${RPM_SKIP_SLURM:-}" == 1 ]]; then
    echo "ci/install-test-deps.sh: RPM_SKIP_SLURM=1, not installing ${PACKAGES[*]} ${REPORT_PACKAGES[*]}" >&2
    exit 0
fi
PACKAGES+=("${REPORT_PACKAGES[@]}")

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "ci/install-test-deps.sh: installing Debian packages: ${missing[*]}" >&2
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo -n)
    else
        echo "ci/install-test-deps.sh: not root and no sudo; install these Debian packages: ${missing[*]}" >&2
        exit 1
    fi
fi

POLICY=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
    if [[ $made_policy -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# Temporary (ci/install-test-deps.sh): no service starts while packages install.\nexit 101\n' \
        | "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
}
# The package lists may be absent (a fresh machine) or stale: update once, then install.
if ! apt_install; then
    "${SUDO[@]}" apt-get update -q
    apt_install
fi
