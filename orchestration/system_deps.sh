#!/usr/bin/env bash
# Debian packages that the test suite uses as real components. Installs only what is missing.
set -euo pipefail
need=()
for pkg in ${ANONREID_SYSTEM_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
