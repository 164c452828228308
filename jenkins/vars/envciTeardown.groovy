// envciTeardown(options): remove the environment and everything it created (`envci teardown`,
// idempotent). Uses env.ENVCI_NAME when envciProvision set it. Options: see envciCommand.
def call(Map opts = [:]) {
    return envciCommand('teardown', opts)
}
