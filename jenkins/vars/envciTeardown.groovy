// envciTeardown(options): remove the environment and everything it created (`envci teardown`,
// idempotent). It needs no envci.yaml: without one, envci finds the environment this build's
// branch or change request provisioned (env.ENVCI_NAME, set by envciProvision, picks one when
// several apps of the repository have one). Call it from `post { always { ... } }` or a `finally`.
// Options: see envciCommand.
def call(Map opts = [:]) {
    return envciCommand('teardown', opts)
}
