// withEnvciEnvironment(options) { outputs -> ... }: provision, wait until ready, seed, run the body,
// and always tear down, also when a stage or the body fails or the build is aborted. The body gets
// the outputs Map (ENVCI_NAME, ENVCI_NAMESPACE, ENVCI_URL, ...); they are in env too.
// Options: see envciCommand, plus seed (default true) and teardown (default true; false keeps the
// environment for the janitor to reap at its TTL).
def call(Map opts = [:], Closure body) {
    Throwable failure = null
    try {
        Map outputs = envciProvision(opts)
        envciWaitReady(opts)
        if (opts.seed != false) {
            envciSeed(opts)
        }
        body.call(outputs)
    } catch (Throwable t) {
        failure = t
        throw t
    } finally {
        if (opts.teardown != false) {
            try {
                envciTeardown(opts)
            } catch (Throwable t) {
                if (failure == null) {
                    throw t
                }
                echo("envci teardown failed too: ${t.message}")  // keep the first failure as the build's cause
            }
        }
    }
}
