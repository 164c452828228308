// envciSeed(options): load data into the environment, the seed steps of envci.yaml in order
// (`envci seed`). Options: see envciCommand.
def call(Map opts = [:]) {
    return envciCommand('seed', opts)
}
