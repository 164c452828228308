#!/bin/sh
# The demo's smoke test. It runs on the CI runner with the environment's outputs (ENVCI_NAME,
# ENVCI_NAMESPACE, ENVCI_URL_WEB) and writes a JUnit report. DEMO_FAIL=1 makes it fail on purpose,
# which is how the CI examples show that teardown still runs and the job still fails.
set -eu
mkdir -p reports
name="${ENVCI_NAME:-unknown}"
if [ "${DEMO_FAIL:-0}" = 1 ]; then
  failure='<failure message="DEMO_FAIL=1: failing on purpose">the smoke test was asked to fail</failure>'
  status=1
else
  failure=''
  status=0
fi
cat > reports/smoke.xml <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuite name="smoke" tests="1" failures="$status" errors="0">
  <testcase classname="demo.smoke" name="environment $name answers">$failure</testcase>
</testsuite>
XML
echo "smoke: environment $name, web at ${ENVCI_URL_WEB:-?}: $([ "$status" = 0 ] && echo passed || echo FAILED)"
exit "$status"
