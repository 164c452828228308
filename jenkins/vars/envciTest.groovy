// envciTest(options): run the test suites (`envci test`), hand the JUnit report to the junit step
// whatever the outcome, then fail the build if envci failed (exit 1: tests failed).
// Options: see envciCommand, plus junit (default true).
def call(Map opts = [:]) {
    int status = envciCommand('test', opts + [returnStatus: true])
    if (opts.junit != false) {
        junit(testResults: 'envci-report/junit.xml', allowEmptyResults: true)
    }
    if (status != 0) {
        error("envci test failed with exit code ${status}" + (status == 1 ? ' (tests failed)' : ''))
    }
    return status
}
