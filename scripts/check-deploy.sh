#!/usr/bin/env bash
# Checks deploy/: the Prometheus alert rules parse and fire when their tests say
# (`promtool test rules`), and the scrape configuration is valid.
#
# promtool comes from Debian's prometheus package. Installing that package would also
# enable and start a Prometheus server, so the package is only unpacked, under
# target/tools/ (once), unless a promtool is already on the PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

promtool=$(command -v promtool || true)
if [ -z "$promtool" ]; then
    tools=target/tools/prometheus
    promtool=$tools/usr/bin/promtool
    if [ ! -x "$promtool" ]; then
        echo "==> unpacking promtool from Debian's prometheus package into $tools"
        download=$(mktemp -d)
        trap 'rm -rf "$download"' EXIT
        if ! (cd "$download" && apt-get download -qq prometheus 2>/dev/null); then
            sudo=""
            [ "$(id -u)" -eq 0 ] || sudo="sudo"
            $sudo apt-get update -qq
            (cd "$download" && apt-get download -qq prometheus)
        fi
        mkdir -p "$tools"
        dpkg-deb -x "$download"/prometheus_*.deb "$tools"
    fi
fi

"$promtool" check rules deploy/prometheus/alerts.yml
"$promtool" test rules deploy/prometheus/alerts_test.yml
"$promtool" check config --syntax-only deploy/prometheus/prometheus.yml
echo "deploy/: rules, rule tests and configuration check out (the metric names and the dashboard: node test deploy_files_name_only_metrics_the_node_exports)"
