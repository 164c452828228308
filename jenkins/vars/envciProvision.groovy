// envciProvision(options): create or update this build's environment (`envci provision`).
// Sets env.ENVCI_NAME, env.ENVCI_NAMESPACE, env.ENVCI_URL, env.ENVCI_URL_<COMPONENT> for later
// steps and returns them as a Map. Options: see envciCommand.
def call(Map opts = [:]) {
    envciCommand('provision', opts)
    Map outputs = [:]
    String text = readFile('.envci/outputs.env')
    text.readLines().each { String line ->
        int eq = line.indexOf('=')
        if (eq > 0) {
            outputs[line.substring(0, eq)] = line.substring(eq + 1)
        }
    }
    outputs.each { k, v -> env."${k}" = v }
    return outputs
}
