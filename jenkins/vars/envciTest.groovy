// envciTest(options): run the test suites (`envci test`) and hand the JUnit report to the junit step
// whatever the outcome. Failing tests (exit 1) mark the build UNSTABLE, as the junit step does for a
// report with failures, and the pipeline goes on (teardown, archiving); any other failure (bad input,
// not ready, infrastructure) fails the build. Options: see envciCommand, plus junit (default true).
// Returns envci's exit code.
def call(Map opts = [:]) {
    int status = envciCommand('test', opts + [returnStatus: true])
    if (opts.junit != false) {
        junit(testResults: 'envci-report/junit.xml', allowEmptyResults: true)
    }
    if (status == 1) {
        unstable('envci test: tests failed (see the test results and envci-report/summary.md)')
    } else if (status != 0) {
        error("envci test failed with exit code ${status} (2 bad input, 3 not ready, 4 infrastructure)")
    }
    return status
}
